"""The runtime: one model file on one device, running one block of rows at a time.

TorchScript today, behind a small surface (`load`, `run_batch`, `warm_up`) that another
backend can offer too. The batcher calls `run_batch` on its worker thread; nothing here knows
about queues, requests or HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from modelrepo import torchscript


class OutputMismatch(Exception):
    """The model answered a different number of rows than it was given."""


class TorchScriptRuntime:
    """A TorchScript module with a preallocated staging buffer for its batches."""

    platform = "pytorch_libtorch"  # Triton's name for what serves this model file

    def __init__(
        self, module: torch.jit.ScriptModule, device: torch.device, max_rows: int, features: int
    ) -> None:
        self.module = module
        self.device = device
        self.features = features
        staging = torch.empty((max_rows, features), dtype=torch.float32)
        # Pinned host memory makes the one host-to-device copy per batch asynchronous.
        self._staging = staging.pin_memory() if device.type == "cuda" else staging
        self._staging_array = self._staging.numpy()

    @classmethod
    def load(
        cls, path: Path, device: torch.device, max_rows: int, features: int
    ) -> TorchScriptRuntime:
        return cls(torchscript.load(path, device).eval(), device, max_rows, features)

    @property
    def max_rows(self) -> int:
        return len(self._staging_array)

    def run_batch(self, blocks: Sequence[np.ndarray]) -> np.ndarray:
        """Stack the blocks once, move them to the device once, run, bring outputs back once.

        Raises OutputMismatch unless the model returns one output row per input row: a model
        that drops or adds rows would hand requests each other's answers.
        """
        rows = sum(len(block) for block in blocks)
        if rows > self.max_rows:
            raise ValueError(f"batch of {rows} rows exceeds max_batch_size")
        np.concatenate(blocks, axis=0, out=self._staging_array[:rows])
        inputs = self._staging[:rows]
        if self.device.type == "cuda":
            inputs = inputs.to(self.device, non_blocking=True)
        with torch.inference_mode():
            outputs = self.module(inputs)
        answer = outputs.to("cpu").numpy()  # the one device-to-host sync of the batch
        if answer.ndim == 0 or len(answer) != rows:
            got = "a scalar" if answer.ndim == 0 else f"{len(answer)} output rows"
            raise OutputMismatch(f"the model returned {got} for {rows} input rows")
        return answer

    def warm_up(self) -> None:
        """A few forward passes at batch sizes up to the max, so the first request is not slow."""
        for size in sorted({1, 2, 8, 32, self.max_rows} & set(range(1, self.max_rows + 1))):
            self.run_batch([np.zeros((size, self.features), dtype=np.float32)])
