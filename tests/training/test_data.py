from pathlib import Path

import pytest
import torch

from tests.conftest import MNIST_FIXTURE
from training import data


def test_mnist_fixture_loads_through_torchvision_layout() -> None:
    splits = data.load_mnist(MNIST_FIXTURE, seed=0, download=False)
    assert splits.sizes() == {"train": 275, "validation": 25, "test": 200}
    assert splits.train.x.shape == (275, 784)
    assert splits.train.x.dtype == torch.float32
    assert splits.train.x.min() >= 0.0
    assert splits.train.x.max() <= 1.0
    assert splits.train.x.max() == 1.0  # white strokes on black background
    assert splits.test.y.dtype == torch.long
    assert set(splits.test.y.tolist()) == set(range(10))


def test_missing_mnist_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(data.DatasetMissing, match=r"MNIST/raw"):
        data.load_mnist(tmp_path, seed=0, download=False)


def test_iris_has_150_rows_and_a_stratified_split() -> None:
    rows = data.read_iris()
    assert rows.x.shape == (150, 4)
    assert rows.y.bincount().tolist() == [50, 50, 50]
    splits = data.load_iris(seed=0)
    assert splits.sizes() == {"train": 108, "validation": 12, "test": 30}
    assert splits.test.y.bincount().tolist() == [10, 10, 10]
    assert splits.train.y.bincount().tolist() == [36, 36, 36]


@pytest.mark.parametrize(
    ("load", "sizes", "features"),
    [
        (data.load_regression, {"train": 6300, "validation": 700, "test": 3000}, 500),
        (data.load_binary, {"train": 12600, "validation": 1400, "test": 6000}, 200),
    ],
)
def test_synthetic_sizes_and_reproducibility(load, sizes, features) -> None:  # type: ignore[no-untyped-def]
    first, again, other = load(seed=0), load(seed=0), load(seed=1)
    assert first.sizes() == sizes
    assert first.train.x.shape[1] == features
    assert torch.equal(first.train.x, again.train.x)
    assert torch.equal(first.test.y, again.test.y)
    assert not torch.equal(first.train.x, other.train.x)


def test_regression_follows_its_generating_formula() -> None:
    splits = data.load_regression(seed=0)
    x, y = splits.test.x, splits.test.y
    assert y.shape == (3000, 1)
    residual = y.squeeze(1) - (x.sum(dim=1) * data.REGRESSION_WEIGHT + data.REGRESSION_BIAS)
    assert residual.std().item() == pytest.approx(data.REGRESSION_NOISE_STD, rel=0.1)


def test_binary_classes_are_balanced_and_centred() -> None:
    test = data.load_binary(seed=0).test
    assert test.y.bincount().tolist() == [3000, 3000]
    assert test.x[test.y == 1].mean().item() == pytest.approx(2.0, abs=0.05)
    assert test.x[test.y == 0].mean().item() == pytest.approx(-2.0, abs=0.05)
