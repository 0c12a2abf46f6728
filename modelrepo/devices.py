"""Which device a model runs on, named without importing torch.

A CPU-only install serves ONNX models without torch, so `auto` means CUDA only where torch is
installed and sees a GPU; asking for CUDA without torch says what to install.
"""

from __future__ import annotations

import importlib.util
import re

CUDA_NAME = re.compile(r"cuda(:\d+)?")


def resolve_device(name: str) -> str:
    """`auto` (CUDA when there is a GPU), `cpu`, `cuda` or `cuda:N`, as torch names them;
    ValueError says what is wrong with any other name, or with CUDA where there is none."""
    if name == "cpu":
        return name
    if name != "auto" and not CUDA_NAME.fullmatch(name):
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if not torch_installed():
        if name == "auto":
            return "cpu"
        raise ValueError(f"device {name!r} needs torch: pip install 'mlp-serve[torch]'")
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here")
    return name


def torch_installed() -> bool:
    return package_installed("torch")


def package_installed(name: str) -> bool:
    """The package can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # an import hook that refuses it, a broken install
        return False
