"""The gRPC transport: Triton's `inference.GRPCInferenceService` and gRPC's health service,
served by grpc.aio in the same process and event loop as HTTP, over the same codecs and
batchers."""
