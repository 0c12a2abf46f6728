"""HTTP controllers: KServe v1, the Open Inference Protocol v2 (with health)."""
