"""The runtime's batch path: one stacking into the staging buffer, one transfer each way, and
one output row per input row or the batch fails."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from modelrepo import torchscript
from service.runtime import OutputMismatch, TorchScriptRuntime


def load_iris(repo: Path, device: str) -> TorchScriptRuntime:
    runtime = TorchScriptRuntime.load(repo / "iris" / "1" / "model.pt", torch.device(device), 64, 4)
    runtime.warm_up()
    return runtime


def blocks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((n, 4), dtype=np.float32) * 5 for n in (1, 3, 2)]


def test_blocks_are_stacked_into_one_forward_pass(tiny_repo: Path) -> None:
    runtime = load_iris(tiny_repo, "cpu")
    outputs = runtime.run_batch(blocks())
    with torch.inference_mode():
        expected = runtime.module(torch.from_numpy(np.concatenate(blocks()))).numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-6)
    assert not runtime._staging.is_pinned()


class DropsLastRow(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:-1]


class Scalar(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (DropsLastRow(), "the model returned 5 output rows for 6 input rows"),
        (Scalar(), "the model returned a scalar for 6 input rows"),
    ],
)
def test_a_model_that_answers_other_rows_fails_the_batch(
    tmp_path: Path, module: nn.Module, message: str
) -> None:
    path = tmp_path / "model.pt"
    torchscript.save(torchscript.script(module), path)
    runtime = TorchScriptRuntime.load(path, torch.device("cpu"), 8, 4)
    with pytest.raises(OutputMismatch, match=message):
        runtime.run_batch(blocks())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_batch_syncs_once_through_pinned_staging(tiny_repo: Path) -> None:
    runtime = load_iris(tiny_repo, "cuda")
    assert runtime._staging.is_pinned()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs = runtime.run_batch(blocks())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1  # the copy of the outputs back to the host
    cpu = load_iris(tiny_repo, "cpu").run_batch(blocks())
    np.testing.assert_allclose(outputs, cpu, rtol=1e-4, atol=1e-6)
