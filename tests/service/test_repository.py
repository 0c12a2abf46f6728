"""A loaded version's batch path: one stacking into the staging buffer, one transfer each way."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from service.model_config import BatchingConfig
from service.repository import LoadedModel, load_version

BATCHING = BatchingConfig(max_batch_size=64, max_queue_delay_s=0.0)


def load_iris(repo: Path, device: str) -> LoadedModel:
    return load_version(repo / "iris" / "1", "iris", torch.device(device), BATCHING, warmup=True)


def blocks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((n, 4), dtype=np.float32) * 5 for n in (1, 3, 2)]


def test_blocks_are_stacked_into_one_forward_pass(tiny_repo: Path) -> None:
    model = load_iris(tiny_repo, "cpu")
    outputs = model.run_batch(blocks())
    with torch.inference_mode():
        expected = model.module(torch.from_numpy(np.concatenate(blocks()))).numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-6)
    assert not model._staging.is_pinned()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_batch_syncs_once_through_pinned_staging(tiny_repo: Path) -> None:
    model = load_iris(tiny_repo, "cuda")
    assert model._staging.is_pinned()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs = model.run_batch(blocks())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1  # the copy of the outputs back to the host
    cpu = load_iris(tiny_repo, "cpu").run_batch(blocks())
    np.testing.assert_allclose(outputs, cpu, rtol=1e-4, atol=1e-6)
