"""One task end to end: load, fit, evaluate, export, verify, plot, publish a new version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from modelrepo import layout
from modelrepo.card import ModelCard, TrainingInfo
from modelrepo.layout import CURVES_FILE, MODEL_FILE, ONNX_FILE, sha256_of
from training import export
from training.augment import Augmentation
from training.data import Split, Splits
from training.fit import (
    EpochCallback,
    History,
    Stopwatch,
    evaluate,
    fit,
    native_bf16,
    plot_curves,
)
from training.nets import Probabilities, Rescale, ServingModel, Standardize, mlp
from training.synthetic import describe_added
from training.tasks import DataSource, Hyperparameters, TaskSpec


@dataclass(frozen=True)
class RunOptions:
    data_dir: Path
    repo: Path
    seed: int
    device: torch.device
    download: bool = True
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    # Off here, so code and benchmarks calling the pipeline get the plain fit; the CLI turns it
    # on. Tasks without an augmentation recipe ignore it.
    augment: bool = False

    def training_split(self, task: TaskSpec, train: Split) -> Split:
        """The rows this run trains on: the task's, and its upload-like rows when augmenting."""
        if self.augment and task.upload_like is not None:
            return task.upload_like(train, self.seed)
        return train

    def augmentation(self, task: TaskSpec) -> Augmentation | None:
        """What this run does to the task's training batches: nothing, or its recipe."""
        return task.augmentation if self.augment else None

    def hyperparameters(self, task: TaskSpec) -> Hyperparameters:
        defaults = task.defaults
        default_epochs = defaults.epochs
        if self.augmentation(task) is not None and task.augmented_epochs is not None:
            default_epochs = task.augmented_epochs
        return Hyperparameters(
            epochs=self.epochs or default_epochs,
            batch_size=self.batch_size or defaults.batch_size,
            lr=self.lr or defaults.lr,
            weight_decay=defaults.weight_decay,
        )


@dataclass(frozen=True)
class TaskResult:
    card: ModelCard
    path: Path
    wall_time_s: float
    fit_time_s: float

    @property
    def passed(self) -> bool:
        return all(bar.passed for bar in self.card.bars)


def build_model(task: TaskSpec, train: Split) -> ServingModel:
    """A fresh model whose normalisation (and output scale) is fitted on `train`."""
    normalize = Standardize.fit(train.x, per_feature=task.per_feature_norm)
    net = mlp(task.in_features, task.hidden, task.out_features, task.dropout)
    if task.kind == "classification":
        head: torch.nn.Module = Probabilities()
    else:
        std = train.y.std(dim=0)  # 1 for a constant target: its values are all the mean
        head = Rescale(train.y.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)))
    return ServingModel(normalize, net, head)


def measure(
    model: ServingModel, task: TaskSpec, splits: Splits, source: DataSource
) -> dict[str, float]:
    """The task metric on validation, test and every extra evaluation split."""
    evaluations = {"validation": splits.validation, "test": splits.test}
    device = splits.test.x.device
    evaluations |= {name: load(source).to(device) for name, load in task.extra_evaluations.items()}
    metrics = {}
    for name, split in evaluations.items():
        metrics[f"{name}_loss"], metrics[f"{name}_{task.metric}"] = evaluate(model, task, split)
    return metrics


@dataclass(frozen=True)
class Trained:
    """A fitted model and what its card says about how it came to be."""

    model: ServingModel
    history: History
    metrics: dict[str, float]
    sizes: dict[str, int]
    params: Hyperparameters
    seed: int
    device: torch.device
    bf16: bool
    # Read when the card is written: a run's wall time includes its export.
    wall_time_s: Callable[[], float]


def train_task(
    task: TaskSpec, options: RunOptions, on_epoch: EpochCallback | None = None
) -> TaskResult:
    clock = Stopwatch()
    torch.manual_seed(options.seed)
    source = DataSource(options.data_dir, options.seed, options.download)
    splits = task.load(source)
    train = options.training_split(task, splits.train)
    if len(train) > len(splits.train):  # the card's dataset description says what was added
        task = replace(
            task,
            dataset_description=f"{task.dataset_description} {describe_added(splits.train, train)}",
        )
    splits = replace(splits, train=train)
    params = options.hyperparameters(task)
    augmentation = options.augmentation(task)
    if augmentation is not None:  # the card's dataset description says how
        task = replace(
            task, dataset_description=f"{task.dataset_description} {augmentation.describe()}"
        )
    model = build_model(task, splits.train).to(options.device)
    splits = splits.to(options.device)
    bf16 = task.mixed_precision and native_bf16(options.device)
    fit_clock = Stopwatch()
    history = fit(model, task, splits, params, options.seed, bf16, on_epoch, augmentation)
    metrics = measure(model, task, splits, source)
    fit_time = fit_clock.elapsed()
    trained = Trained(
        model=model,
        history=history,
        metrics=metrics,
        sizes=splits.sizes(),
        params=params,
        seed=options.seed,
        device=options.device,
        bf16=bf16,
        wall_time_s=clock.elapsed,
    )
    path, card = publish_version(task, trained, options.repo, splits.test.x)
    return TaskResult(card=card, path=path, wall_time_s=clock.elapsed(), fit_time_s=fit_time)


def publish_version(
    task: TaskSpec, trained: Trained, repo: Path, sample: torch.Tensor
) -> tuple[Path, ModelCard]:
    """Export `trained.model` (TorchScript and ONNX, each checked against it on `sample` rows),
    plot its curves, and publish them with the card as the next version of `task.name` in
    `repo`; config.pbtxt follows."""
    model_dir = repo / task.name
    export.check_config_fits(task, model_dir)
    staging = layout.new_staging_dir(model_dir)
    try:
        model_path = staging / MODEL_FILE
        export.script_model(trained.model, model_path)
        export.verify_roundtrip(trained.model, model_path, sample)
        export.export_onnx(trained.model, staging / ONNX_FILE, sample)
        export.verify_onnx(trained.model, staging / ONNX_FILE, sample)
        plot_curves(trained.history, task, staging / CURVES_FILE)
        training = TrainingInfo(
            seed=trained.seed,
            epochs=trained.params.epochs,
            epochs_run=len(trained.history.epochs),
            optimizer=f"AdamW + one-cycle{' (bf16 autocast)' if trained.bf16 else ''}",
            lr=trained.params.lr,
            weight_decay=trained.params.weight_decay,
            batch_size=trained.params.batch_size,
            device=str(trained.device),
            wall_time_s=round(trained.wall_time_s(), 3),
        )
        files = {name: sha256_of(staging / name) for name in (MODEL_FILE, ONNX_FILE, CURVES_FILE)}
        example = export.typical_row(task, trained.model)
        card = export.build_card(task, 1, files, trained.metrics, trained.sizes, training, example)
        path, card = export.publish(staging, model_dir, card)
    finally:
        layout.discard(staging)
    export.write_triton_config(task, model_dir)
    return path, card
