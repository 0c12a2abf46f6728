"""Datasets and their splits, as in-memory float32 tensors.

Every loader returns a `Splits`: raw inputs (the units a client sends to the service) and
targets for train, validation and test. Normalisation is fitted later on `train` alone.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

IRIS_CLASSES = ("setosa", "versicolor", "virginica")
IRIS_FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
DATA_DIR_ENV = "MLP_SERVE_DATA_DIR"
# The label of a training row that belongs to no class (a picture of no digit): the fit teaches
# an even spread over the classes for it (training/synthetic.py).
NO_CLASS = -1


class DatasetMissing(Exception):
    """The dataset files are not where they were looked for and could not be downloaded."""


@dataclass(frozen=True)
class Split:
    """Inputs `x` (N, features) in raw units and targets `y` (class indices or values; in a
    training split, NO_CLASS for a row of no class)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Splits:
    train: Split
    validation: Split
    test: Split

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }

    def to(self, device: torch.device) -> Splits:
        return Splits(self.train.to(device), self.validation.to(device), self.test.to(device))


def default_data_dir() -> Path:
    """`$MLP_SERVE_DATA_DIR`, else the user's cache directory."""
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "mlp-serve" / "data"


def hold_out(split: Split, fraction: float, generator: torch.Generator) -> tuple[Split, Split]:
    """Randomly divide `split` into (rest, held-out `fraction`)."""
    order = torch.randperm(len(split), generator=generator)
    n_held = round(len(split) * fraction)
    held, rest = order[:n_held], order[n_held:]
    return Split(split.x[rest], split.y[rest]), Split(split.x[held], split.y[held])


def stratified_split(
    split: Split, fraction: float, generator: torch.Generator
) -> tuple[Split, Split]:
    """Like `hold_out`, but takes `fraction` of every class, so class balance is kept."""
    rest_idx, held_idx = [], []
    for label in torch.unique(split.y):
        members = torch.nonzero(split.y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_held = round(len(members) * fraction)
        held_idx.append(members[:n_held])
        rest_idx.append(members[n_held:])
    rest, held = torch.cat(rest_idx).sort().values, torch.cat(held_idx).sort().values
    return Split(split.x[rest], split.y[rest]), Split(split.x[held], split.y[held])


def load_mnist(data_dir: Path, seed: int, download: bool = True) -> Splits:
    """MNIST's official 60k/10k split (5k of the 60k held out for validation).

    Inputs are float32 (N, 784) pixels in [0, 1], white digit on black, as the model expects.
    """
    from torchvision.datasets import MNIST  # training-only dependency; slow to import

    try:
        train = MNIST(root=str(data_dir), train=True, download=False)
    except RuntimeError:
        train = _download_mnist(data_dir) if download else None
        if train is None:
            raise DatasetMissing(
                f"MNIST not found under {data_dir}/MNIST/raw/ and could not be downloaded; "
                "put the four IDX files (train-images-idx3-ubyte, ...) there or pass --data-dir"
            ) from None
    test = MNIST(root=str(data_dir), train=False, download=False)
    generator = torch.Generator().manual_seed(seed)
    fit, validation = hold_out(_mnist_split(train), 1 / 12, generator)
    return Splits(fit, validation, _mnist_split(test))


def _download_mnist(data_dir: Path):  # type: ignore[no-untyped-def]
    from torchvision.datasets import MNIST

    try:
        return MNIST(root=str(data_dir), train=True, download=True)
    except (RuntimeError, OSError):
        return None


def _mnist_split(dataset) -> Split:  # type: ignore[no-untyped-def]
    pixels = dataset.data.reshape(len(dataset.data), -1).to(torch.float32) / 255.0
    return Split(pixels, dataset.targets.to(torch.long))


def read_iris() -> Split:
    """All 150 rows of Fisher's iris: 4 measurements in cm, class index into IRIS_CLASSES."""
    text = resources.files("training").joinpath("datasets/iris.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    x = torch.tensor([[float(row[name]) for name in IRIS_FEATURES] for row in rows])
    y = torch.tensor([IRIS_CLASSES.index(row["species"]) for row in rows])
    return Split(x, y)


def load_iris(seed: int) -> Splits:
    """Stratified 80/20 train/test split; 10% of train held out for validation curves."""
    generator = torch.Generator().manual_seed(seed)
    train, test = stratified_split(read_iris(), 0.2, generator)
    fit, validation = stratified_split(train, 0.1, generator)
    return Splits(fit, validation, test)


REGRESSION_FEATURES = 500
REGRESSION_WEIGHT = 0.0056
REGRESSION_BIAS = 0.028
REGRESSION_NOISE_STD = 0.01


def load_regression(seed: int, rows: int = 10_000, train_rows: int = 7_000) -> Splits:
    """y = X.w + b + e with X ~ N(0, 1), w = 0.0056, b = 0.028, e ~ N(0, 0.01^2); y is (N, 1)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, REGRESSION_FEATURES, generator=generator)
    noise = torch.randn(rows, generator=generator) * REGRESSION_NOISE_STD
    y = (x.sum(dim=1) * REGRESSION_WEIGHT + REGRESSION_BIAS + noise).unsqueeze(1)
    train, test = Split(x[:train_rows], y[:train_rows]), Split(x[train_rows:], y[train_rows:])
    fit, validation = hold_out(train, 0.1, generator)
    return Splits(fit, validation, test)


BINARY_FEATURES = 200
BINARY_MEAN = 2.0


def load_binary(seed: int, rows_per_class: int = 10_000, train_per_class: int = 7_000) -> Splits:
    """Class 1 ~ N(+2, 1), class 0 ~ N(-2, 1) in 200 dimensions; 7,000/3,000 split per class."""
    generator = torch.Generator().manual_seed(seed)

    def sample(label: int) -> Split:
        centre = BINARY_MEAN if label == 1 else -BINARY_MEAN
        x = torch.randn(rows_per_class, BINARY_FEATURES, generator=generator) + centre
        return Split(x, torch.full((rows_per_class,), label, dtype=torch.long))

    zeros, ones = sample(0), sample(1)
    train = _concat(
        Split(zeros.x[:train_per_class], zeros.y[:train_per_class]),
        Split(ones.x[:train_per_class], ones.y[:train_per_class]),
    )
    test = _concat(
        Split(zeros.x[train_per_class:], zeros.y[train_per_class:]),
        Split(ones.x[train_per_class:], ones.y[train_per_class:]),
    )
    fit, validation = stratified_split(train, 0.1, generator)
    return Splits(fit, validation, test)


def _concat(a: Split, b: Split) -> Split:
    return Split(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]))
