"""TorchScript on CPU or CUDA: the file Triton's PyTorch backend reads, and the one runtime
that needs torch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from modelrepo import torchscript
from service.runtime import RuntimeName, check_rows, stack_into


class TorchScriptRuntime:
    """A TorchScript module with a preallocated staging buffer for its batches."""

    name: RuntimeName = "torchscript"
    platform = "pytorch_libtorch"
    inline_safe = False  # a module may run any TorchScript code, and CUDA syncs

    def __init__(
        self, module: torch.jit.ScriptModule, device: torch.device, max_rows: int, features: int
    ) -> None:
        self.module = module
        self.device = str(device)
        self._device = device
        self.features = features
        staging = torch.empty((max_rows, features), dtype=torch.float32)
        # Pinned host memory makes the one host-to-device copy per batch asynchronous. (No
        # mutation testing on CUDA-only lines: only the CUDA test, where there is a GPU, runs them.)
        cuda = device.type == "cuda"  # pragma: no mutate
        self._staging = staging.pin_memory() if cuda else staging  # pragma: no mutate
        self._staging_array = self._staging.numpy()

    @classmethod
    def load(
        cls, path: Path, device: str, max_rows: int, features: int, threads: int = 1
    ) -> TorchScriptRuntime:
        if torch.get_num_threads() != threads:  # process-wide: every TorchScript model shares it
            torch.set_num_threads(threads)
        where = torch.device(device)
        return cls(torchscript.load(path, where).eval(), where, max_rows, features)

    @property
    def max_rows(self) -> int:
        return len(self._staging_array)

    def run_batch(self, blocks: Sequence[np.ndarray]) -> np.ndarray:
        """Stack the blocks once, move them to the device once, run, bring outputs back once."""
        rows = len(stack_into(self._staging_array, blocks))
        inputs = self._staging[:rows]
        if self._device.type == "cuda":  # pragma: no mutate
            inputs = inputs.to(self._device, non_blocking=True)  # pragma: no mutate
        with torch.inference_mode():
            outputs = self.module(inputs)
        return check_rows(outputs.to("cpu").numpy(), rows)  # the one device-to-host sync
