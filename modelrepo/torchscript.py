"""TorchScript files, with exactly torch's TorchScript deprecation warnings silenced.

TorchScript is the model contract of this project (Triton's PyTorch backend loads it too),
so the `FutureWarning`s that `torch.jit.*` emits on every call are noise here. Everything else
stays loud.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

_JIT_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"


@contextmanager
def _jit_deprecations_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATION, category=FutureWarning)
        yield


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """Compile `module` to TorchScript."""
    with _jit_deprecations_silenced():
        return torch.jit.script(module)


def save(module: torch.jit.ScriptModule, path: Path) -> None:
    """Write a TorchScript archive."""
    with _jit_deprecations_silenced():
        torch.jit.save(module, str(path))


def load(path: Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """Read a TorchScript archive onto `device`."""
    with _jit_deprecations_silenced():
        return torch.jit.load(str(path), map_location=device)
