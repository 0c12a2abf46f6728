"""Model-side capacity: rows per second through the batcher, in process, no HTTP, for each
runtime side by side in one run.

    python -m bench.model_capacity [--device auto] [--rows 1024] [--concurrency 4] [--seconds 5]

Loads a model from the repository exactly as the service does (card, hash, runtime, device,
warm-up, staging buffer, pinned on CUDA), once per runtime (`--runtimes`; ONNX Runtime only
on the CPU), and keeps `--concurrency` requests of `--rows` rows each queued in its
DynamicBatcher, so stacking, the transfers and the forward pass are all counted; every answer
is compared with the runtime's own answer for the same rows. Beside it, a bare loop over the
runtime's `run_batch` at batch sizes 1, 64 and `--rows` gives the reference. Writes
model_capacity.{md,json} to --out (bench/runs/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path
from typing import Any, get_args

import numpy as np

from bench.harness import ROOT, RUNS
from service.loading import LoadedModel
from service.repository import ModelRegistry
from service.runtime import RuntimeName
from service.settings import Settings

RUNTIMES = get_args(RuntimeName)


async def through_batcher(
    model: LoadedModel, rows: int, concurrency: int, seconds: float
) -> dict[str, float]:
    """Rows/s with `concurrency` clients each sending `rows`-row requests back to back."""
    assert model.batcher is not None
    batcher = model.batcher
    block = np.random.default_rng(0).random((rows, model.card.input.features), dtype=np.float32)
    expected = model.runtime.run_batch([block]).copy()
    deadline = time.perf_counter() + seconds
    wrong = 0

    async def client() -> int:
        nonlocal wrong
        sent = 0
        while sent == 0 or time.perf_counter() < deadline:  # at least one request each
            answer = await batcher.infer(block, timeout_s=60)
            wrong += not np.allclose(answer, expected, rtol=1e-5, atol=1e-6)
            sent += rows
        return sent

    batches_before = batcher.stats.batches
    began = time.perf_counter()
    done = await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    batches = batcher.stats.batches - batches_before
    return {
        "rows_per_s": sum(done) / elapsed,
        "requests": sum(done) // rows,
        "wrong_answers": wrong,
        "batches": batches,
        "mean_batch": sum(done) / max(batches, 1),
    }


def bare_forward(model: LoadedModel, batch: int, seconds: float) -> float:
    """Rows/s of the runtime alone: one host block in, host output back, per pass."""
    block = np.random.default_rng(1).random((batch, model.card.input.features), dtype=np.float32)
    passes = 0
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(20):
            model.runtime.run_batch([block])
        passes += 20
    return passes * batch / (time.perf_counter() - began)


async def measure_runtime(args: argparse.Namespace, runtime: str) -> dict[str, Any]:
    settings = Settings(
        models=args.models, device=args.device, torch_threads=args.threads, runtime=runtime
    )
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
    return {
        "runtime": model.runtime.name,
        "device": model.runtime.device,
        "model": f"{model.name} v{model.version}",
        "max_batch_size": model.batching.max_batch_size,
        "batcher": batcher,
        "bare_rows_per_s": bare,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    runtimes = [r for r in args.runtimes if r == "torchscript" or args.device == "cpu"]
    results = [await measure_runtime(args, runtime) for runtime in runtimes]
    by_name = {result["runtime"]: result["batcher"]["rows_per_s"] for result in results}
    ratio = None
    if {"torchscript", "onnxruntime"} <= set(by_name):
        ratio = by_name["onnxruntime"] / by_name["torchscript"]
    return {
        "device": results[0]["device"],
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "rows_per_request": args.rows,
        "concurrency": args.concurrency,
        "runtimes": results,
        "onnxruntime_over_torchscript": ratio,
    }


def render(result: dict[str, Any]) -> str:
    first = result["runtimes"][0]
    lines = [
        "# Model-side capacity (in process, no HTTP)",
        "",
        f"{first['model']} on {result['device']}, {result['threads']} intra-op thread(s); "
        f"{result['concurrency']} clients each sending requests of {result['rows_per_request']} "
        f"rows (max_batch_size {first['max_batch_size']}); the runtimes one after the other in "
        "one run.",
        "",
        "| runtime | path | batch | rows/s |",
        "|---|---|---:|---:|",
    ]
    for run in result["runtimes"]:
        batcher = run["batcher"]
        lines.append(
            f"| {run['runtime']} | through the batcher (stacking, transfers, forward) | "
            f"{batcher['mean_batch']:.0f} | {batcher['rows_per_s']:,.0f} |"
        )
        lines += [
            f"| {run['runtime']} | bare run_batch loop | {size} | {rate:,.0f} |"
            for size, rate in run["bare_rows_per_s"].items()
        ]
    if result["onnxruntime_over_torchscript"] is not None:
        lines += [
            "",
            "ONNX Runtime / TorchScript through the batcher: "
            f"{result['onnxruntime_over_torchscript']:.2f}x",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.model_capacity", description=__doc__)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument(
        "--runtimes",
        type=lambda text: text.split(","),
        default=list(RUNTIMES),
        help="comma-separated (default: torchscript,onnxruntime; ONNX Runtime on the CPU only)",
    )
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
