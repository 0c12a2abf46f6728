"""Model-side capacity: rows per second through the batcher, in process, no HTTP.

    python -m bench.model_capacity [--device auto] [--rows 1024] [--concurrency 4] [--seconds 5]

Loads a model from the repository exactly as the service does (card, hash, device, warm-up,
staging buffer, pinned on CUDA) and keeps `--concurrency` requests of `--rows` rows each queued
in its DynamicBatcher, so stacking, the transfers and the forward pass are all counted. Beside
it, a bare forward loop over the same module at batch sizes 1, 64 and `--rows` (input already
in pinned memory on CUDA, one copy in, one copy out per pass) gives the reference. Writes
model_capacity.{md,json} to --out (bench/runs/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.harness import ROOT, RUNS
from service.loading import LoadedModel
from service.repository import ModelRegistry
from service.settings import Settings


async def through_batcher(
    model: LoadedModel, rows: int, concurrency: int, seconds: float
) -> dict[str, float]:
    """Rows/s with `concurrency` clients each sending `rows`-row requests back to back."""
    assert model.batcher is not None
    batcher = model.batcher
    block = np.random.default_rng(0).random((rows, model.card.input.features), dtype=np.float32)
    deadline = time.perf_counter() + seconds

    async def client() -> int:
        sent = 0
        while sent == 0 or time.perf_counter() < deadline:  # at least one request each
            await batcher.infer(block, timeout_s=60)
            sent += rows
        return sent

    batches_before = batcher.stats.batches
    began = time.perf_counter()
    done = await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    batches = batcher.stats.batches - batches_before
    return {
        "rows_per_s": sum(done) / elapsed,
        "batches": batches,
        "mean_batch": sum(done) / max(batches, 1),
    }


def bare_forward(model: LoadedModel, batch: int, seconds: float) -> float:
    """Rows/s of the module alone: host input (pinned on CUDA) in, host output back, per pass."""
    host = torch.rand(batch, model.card.input.features)
    if model.runtime.device.type == "cuda":
        host = host.pin_memory()
    passes = 0
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() < deadline:
            for _ in range(20):
                inputs = host.to(model.runtime.device, non_blocking=True)
                model.runtime.module(inputs).to("cpu")
            passes += 20
    return passes * batch / (time.perf_counter() - began)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(models=args.models, device=args.device, torch_threads=args.threads)
    torch.set_num_threads(settings.torch_threads)
    registry = ModelRegistry(settings)
    await registry.start()
    try:
        model = registry.get(args.model)
        batcher = await through_batcher(model, args.rows, args.concurrency, args.seconds)
        bare = {
            str(size): bare_forward(model, size, args.seconds / 2)
            for size in sorted({1, 64, args.rows})
        }
    finally:
        await registry.stop()
    device = str(model.runtime.device)
    if model.runtime.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(model.runtime.device)})"
    return {
        "model": f"{model.name} v{model.version}",
        "device": device,
        "torch": torch.__version__,
        "threads": settings.torch_threads,
        "rows_per_request": args.rows,
        "concurrency": args.concurrency,
        "max_batch_size": model.batching.max_batch_size,
        "batcher": batcher,
        "bare_rows_per_s": bare,
    }


def render(result: dict[str, Any]) -> str:
    batcher = result["batcher"]
    lines = [
        "# Model-side capacity (in process, no HTTP)",
        "",
        f"{result['model']} on {result['device']}, torch {result['torch']}, "
        f"{result['threads']} intra-op thread(s); {result['concurrency']} clients each sending "
        f"requests of {result['rows_per_request']} rows (max_batch_size "
        f"{result['max_batch_size']}).",
        "",
        "| path | batch | rows/s |",
        "|---|---:|---:|",
        f"| through the batcher (stacking, transfers, forward) | {batcher['mean_batch']:.0f} | "
        f"{batcher['rows_per_s']:,.0f} |",
    ]
    lines += [
        f"| bare forward loop | {size} | {rate:,.0f} |"
        for size, rate in result["bare_rows_per_s"].items()
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.model_capacity", description=__doc__)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rows", type=int, default=1024, help="rows per request")
    parser.add_argument("--concurrency", type=int, default=4, help="requests kept queued")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--out", type=Path, default=RUNS, help="report folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(measure(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_capacity.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = render(result)
    (args.out / "model_capacity.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
