"""Device names resolve without torch where torch is not needed, and say what is missing."""

from __future__ import annotations

import pytest
import torch

from modelrepo import devices
from modelrepo.devices import resolve_device


def test_cpu_and_auto_without_a_gpu_are_the_cpu() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "mps", ""])
def test_an_unknown_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown device {name!r}"):
        resolve_device(name)


def test_without_torch_auto_is_the_cpu_and_cuda_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices, "torch_installed", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match=r"'cuda:1' needs torch: pip install 'mlp-serve\[torch\]'"):
        resolve_device("cuda:1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_cuda_where_there_is_none_is_refused() -> None:
    with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available here"):
        resolve_device("cuda")
