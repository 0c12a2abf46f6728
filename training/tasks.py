"""Each task as a small declarative spec: dataset, net, loss, metric, bar, defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from modelrepo.card import ImageSpec
from training import data, synthetic
from training.augment import Augmentation

Kind = Literal["classification", "regression"]


@dataclass(frozen=True)
class DataSource:
    """Where a task's data comes from; passed to every loader."""

    data_dir: Path
    seed: int
    download: bool = True


@dataclass(frozen=True)
class BarSpec:
    """`metric op threshold` must hold for the model to pass, e.g. test_accuracy >= 0.98."""

    metric: str
    op: Literal[">=", "<="]
    threshold: float

    def passed(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Kind
    description: str
    dataset_description: str
    load: Callable[[DataSource], data.Splits]
    in_features: int
    hidden: tuple[int, ...]
    out_features: int
    dropout: float
    defaults: Hyperparameters
    bars: tuple[BarSpec, ...]
    per_feature_norm: bool = True
    class_names: tuple[str, ...] | None = None
    value_name: str | None = None
    feature_names: tuple[str, ...] | None = None
    image: ImageSpec | None = None
    input_description: str = ""
    # A user's own data (training/tabular.py): the file's name and the column predicted.
    dataset_source: str | None = None
    target: str | None = None
    # Extra evaluation splits beyond "test", by name (e.g. iris's "all" 150 rows).
    extra_evaluations: dict[str, Callable[[DataSource], data.Split]] = field(default_factory=dict)
    restore_best: bool = False
    # bf16 autocast where the hardware has it: worth it for MNIST's big matmuls only.
    mixed_precision: bool = False
    # How training batches are changed on the fly when a run augments (the CLI's default), and
    # the epochs such a run defaults to: augmented batches take longer to fit.
    augmentation: Augmentation | None = None
    augmented_epochs: int | None = None
    # Rows added to the training split when a run augments (seed -> new split).
    upload_like: Callable[[data.Split, int], data.Split] | None = None
    max_batch_size: int = 1024
    # Measured (README, Performance): any wait costs single-client latency and buys nothing
    # under concurrency, where batches form while the worker runs. Triton's default is 0 too.
    max_queue_delay_us: int = 0

    @property
    def metric(self) -> str:
        """The per-split quality metric: accuracy for classifiers, mean squared error otherwise."""
        return "accuracy" if self.kind == "classification" else "mse"


MNIST = TaskSpec(
    name="mnist",
    kind="classification",
    description="Handwritten digit classifier (MLP 784-512-256-10) trained on MNIST.",
    dataset_description=(
        "MNIST: the official 60,000 training images (1/12 held out for validation) and "
        "10,000 test images of handwritten digits, 28x28 grayscale."
    ),
    load=lambda source: data.load_mnist(source.data_dir, source.seed, source.download),
    in_features=28 * 28,
    hidden=(512, 256),
    out_features=10,
    dropout=0.2,
    defaults=Hyperparameters(epochs=8, batch_size=512, lr=3e-3, weight_decay=1e-2),
    bars=(BarSpec("test_accuracy", ">=", 0.98),),
    per_feature_norm=False,
    mixed_precision=True,
    # Uploads, once service.codecs.images has preprocessed them, differ from MNIST in pen, slant,
    # contrast and texture: see training/augment.py. Augmented batches need more epochs to
    # fit; with them the model scores better on rendered uploads (bench/uploads.py), on test
    # digits uploaded as PNGs and on the raw test set (README, Training).
    augmentation=Augmentation(),
    augmented_epochs=18,
    # Printed and pen digits, and pictures of no digit, drawn here (training/synthetic.py).
    upload_like=synthetic.with_upload_like_rows,
    class_names=tuple(str(digit) for digit in range(10)),
    image=ImageSpec(height=28, width=28),
    input_description=(
        "float32 (N, 784): a 28x28 image flattened row-major, pixels in [0, 1], "
        "white digit on black, digit fitted in a 20x20 box centred by centre of mass (MNIST's own)"
    ),
)

IRIS = TaskSpec(
    name="iris",
    kind="classification",
    description="Iris species classifier (MLP 4-16-16-3) on Fisher's four flower measurements.",
    dataset_description=(
        "Fisher's iris (150 rows, 50 per species): stratified 80/20 train/test split, "
        "10% of train held out for validation."
    ),
    load=lambda source: data.load_iris(source.seed),
    in_features=4,
    hidden=(16, 16),
    out_features=3,
    dropout=0.0,
    defaults=Hyperparameters(epochs=150, batch_size=16, lr=1e-2, weight_decay=1e-3),
    bars=(BarSpec("test_accuracy", ">=", 0.96), BarSpec("all_accuracy", ">=", 0.96)),
    class_names=data.IRIS_CLASSES,
    feature_names=data.IRIS_FEATURES,
    input_description="float32 (N, 4): sepal length, sepal width, petal length, petal width in cm",
    extra_evaluations={"all": lambda source: data.read_iris()},
    max_batch_size=256,
)

REGRESSION = TaskSpec(
    name="regression",
    kind="regression",
    description="Regressor (MLP 500-256-1, dropout 0.5) on a 500-feature synthetic linear problem.",
    dataset_description=(
        "Synthetic: X ~ N(0, 1) with 500 features, y = X.w + b + e, w = 0.0056, b = 0.028, "
        "e ~ N(0, 0.01^2); 10,000 rows, 7,000 train (10% held out for validation) / 3,000 test."
    ),
    load=lambda source: data.load_regression(source.seed),
    in_features=data.REGRESSION_FEATURES,
    hidden=(256,),
    out_features=1,
    dropout=0.5,  # with weight decay, what keeps the fit near the noise floor (1e-4)
    defaults=Hyperparameters(epochs=60, batch_size=256, lr=3e-3, weight_decay=1.0),
    bars=(BarSpec("test_mse", "<=", 2.0e-4),),
    value_name="y",
    feature_names=tuple(f"x{i}" for i in range(data.REGRESSION_FEATURES)),
    input_description="float32 (N, 500): raw features, each ~ N(0, 1)",
    restore_best=True,
)

BINARY = TaskSpec(
    name="binary",
    kind="classification",
    description="Binary classifier (MLP 200-100-2) separating two 200-dimensional Gaussians.",
    dataset_description=(
        "Synthetic: class 1 ~ N(+2, 1), class 0 ~ N(-2, 1) in 200 dimensions, 10,000 rows "
        "per class, 7,000/3,000 train/test per class (10% of train held out for validation)."
    ),
    load=lambda source: data.load_binary(source.seed),
    in_features=data.BINARY_FEATURES,
    hidden=(100,),
    out_features=2,
    dropout=0.0,
    defaults=Hyperparameters(epochs=5, batch_size=256, lr=1e-3, weight_decay=1e-2),
    bars=(BarSpec("test_accuracy", ">=", 0.999),),
    class_names=("0", "1"),
    feature_names=tuple(f"x{i}" for i in range(data.BINARY_FEATURES)),
    input_description="float32 (N, 200): raw features",
)

TASKS: dict[str, TaskSpec] = {task.name: task for task in (MNIST, IRIS, REGRESSION, BINARY)}
