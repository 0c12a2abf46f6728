"""The runtime seam: one model file on one device, running one block of rows at a time.

Two backends offer the same small surface (`run_batch`, `warm_up`, what Triton calls their
platform): TorchScript (`service.torchscript_runtime`, CPU or CUDA) and ONNX Runtime
(`service.onnx_runtime`, CPU). `open_runtime` imports only the backend it opens, so a CPU
install without torch serves ONNX models. The batcher calls `run_batch` on its worker thread;
nothing here knows about queues, requests or HTTP.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from modelrepo.devices import package_installed

RuntimeName = Literal["torchscript", "onnxruntime"]
PACKAGES: dict[RuntimeName, str] = {"torchscript": "torch", "onnxruntime": "onnxruntime"}
WARM_UP_SIZES = (1, 2, 8, 32)


class OutputMismatch(Exception):
    """The model answered a different number of rows than it was given."""


class RuntimeUnavailable(Exception):
    """The backend a model file needs is not installed here."""


class Runtime(Protocol):
    name: RuntimeName
    platform: str  # Triton's name for what serves this model file
    device: str
    features: int
    # Its forward time depends on the rows alone (a graph on the CPU, not code that may wait):
    # a short one may run on the event loop (see `inline_rows`).
    inline_safe: bool

    @property
    def max_rows(self) -> int: ...

    def run_batch(self, blocks: Sequence[np.ndarray]) -> np.ndarray: ...


def installed(name: RuntimeName) -> bool:
    """The backend's package can be imported (found without importing it)."""
    return package_installed(PACKAGES[name])


def open_runtime(
    name: RuntimeName, path: Path, device: str, max_rows: int, features: int, threads: int
) -> Runtime:
    """The model file at `path` loaded by backend `name`, staged for `max_rows` rows."""
    if not installed(name):
        extra = "mlp-serve[torch]" if name == "torchscript" else "onnxruntime"
        raise RuntimeUnavailable(f"{path.name} needs {PACKAGES[name]}: pip install '{extra}'")
    if name == "torchscript":
        from service.torchscript_runtime import TorchScriptRuntime

        return TorchScriptRuntime.load(path, device, max_rows, features, threads)
    from service.onnx_runtime import OnnxRuntime

    return OnnxRuntime.load(path, max_rows, features, threads)


def stack_into(staging: np.ndarray, blocks: Sequence[np.ndarray]) -> np.ndarray:
    """The blocks copied once into the front rows of `staging`; those rows."""
    rows = sum(len(block) for block in blocks)
    if rows > len(staging):
        raise ValueError(f"batch of {rows} rows exceeds max_batch_size")
    np.concatenate(blocks, axis=0, out=staging[:rows])
    return staging[:rows]


def check_rows(answer: np.ndarray, rows: int) -> np.ndarray:
    """`answer`, unless the model returned other than one output row per input row: a model
    that drops or adds rows would hand requests each other's answers."""
    if answer.ndim == 0 or len(answer) != rows:
        got = "a scalar" if answer.ndim == 0 else f"{len(answer)} output rows"
        raise OutputMismatch(f"the model returned {got} for {rows} input rows")
    return answer


def inline_rows(runtime: Runtime, limit_s: float, repeats: int = 5) -> int:
    """The most rows, of the warm-up sizes, whose forward pass takes at most `limit_s` (the
    median of `repeats`): what may run on the event loop. 0 for a runtime that may run code
    whose time the rows do not bound (TorchScript), or with no limit."""
    if not runtime.inline_safe or limit_s <= 0:
        return 0
    best = 0
    for size in sorted(s for s in WARM_UP_SIZES if s <= runtime.max_rows):
        block = [np.zeros((size, runtime.features), dtype=np.float32)]
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            runtime.run_batch(block)
            times.append(time.perf_counter() - began)
        if statistics.median(times) > limit_s:
            break
        best = size
    return best


def warm_up(runtime: Runtime) -> None:
    """A few forward passes at batch sizes up to the max, so the first request is not slow."""
    for size in sorted({*WARM_UP_SIZES, runtime.max_rows} & set(range(1, runtime.max_rows + 1))):
        runtime.run_batch([np.zeros((size, runtime.features), dtype=np.float32)])
