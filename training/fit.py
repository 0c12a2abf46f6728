"""The training loop, its metrics and its curves.

Data lives in memory on the training device; batches are index slices of one tensor, so there is
no DataLoader, no worker process and no per-batch host-to-device copy.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from training.data import NO_CLASS, Split, Splits
from training.nets import Rescale, ServingModel
from training.tasks import Hyperparameters, TaskSpec

EpochCallback = Callable[["EpochStats"], None]
# Changes a batch of raw training inputs, drawing its randomness from the generator.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    validation_loss: float
    validation_metric: float


@dataclass
class History:
    metric: str
    epochs: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0


def loss_function(task: TaskSpec) -> nn.Module:
    return nn.CrossEntropyLoss() if task.kind == "classification" else nn.MSELoss()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 matmuls natively; elsewhere bf16 autocast is slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def fit(
    model: ServingModel,
    task: TaskSpec,
    splits: Splits,
    params: Hyperparameters,
    seed: int,
    bf16: bool,
    on_epoch: EpochCallback | None = None,
    augment: Augment | None = None,
) -> History:
    """Train `model` on `splits.train` (already on the model's device) with AdamW + one-cycle;
    `augment`, when given, changes every training batch before the forward pass."""
    generator = torch.Generator(device=splits.train.x.device).manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.lr, weight_decay=params.weight_decay
    )
    steps_per_epoch = math.ceil(len(splits.train) / params.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.lr, total_steps=params.epochs * steps_per_epoch
    )
    criterion = loss_function(task)
    if task.kind == "classification" and bool((splits.train.y == NO_CLASS).any()):
        criterion = SpreadOverClasses(task.out_features)
    history = History(metric=task.metric)
    best_loss, best_state = math.inf, None
    for epoch in range(1, params.epochs + 1):
        train_loss = _train_epoch(
            model,
            splits.train,
            params.batch_size,
            criterion,
            optimizer,
            schedule,
            generator,
            bf16,
            augment,
        )
        validation_loss, validation_metric = evaluate(model, task, splits.validation)
        stats = EpochStats(epoch, train_loss, validation_loss, validation_metric)
        history.epochs.append(stats)
        if validation_loss < best_loss:
            best_loss, history.best_epoch = validation_loss, epoch
            if task.restore_best:
                best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(stats)
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = params.epochs
    return history


def _train_epoch(
    model: ServingModel,
    train: Split,
    batch_size: int,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    bf16: bool,
    augment: Augment | None,
) -> float:
    model.train()
    device = train.x.device
    order = torch.randperm(len(train), generator=generator, device=device)
    total = torch.zeros((), device=device)
    for start in range(0, len(train), batch_size):
        batch = order[start : start + batch_size]
        x = train.x[batch] if augment is None else augment(train.x[batch], generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model.logits(x).float()
            loss = criterion(logits, training_targets(model, train.y[batch]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.detach() * len(batch)
    return total.item() / len(train)  # one device sync per epoch


class SpreadOverClasses(nn.Module):
    """Cross-entropy where a row labelled NO_CLASS targets the even spread over the classes
    (outlier exposure): the model learns to say "none of these" with a flat answer."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        spread = torch.full_like(logits, 1 / self.classes)
        one_hot = nn.functional.one_hot(y.clamp_min(0), self.classes).to(logits.dtype)
        return nn.functional.cross_entropy(logits, torch.where(y[:, None] < 0, spread, one_hot))


def training_targets(model: ServingModel, y: torch.Tensor) -> torch.Tensor:
    """Targets in the units of `model.logits`: class indices, or standardised regression values."""
    if isinstance(model.head, Rescale):
        return (y - model.head.mean) / model.head.std
    return y


@torch.inference_mode()
def evaluate(model: ServingModel, task: TaskSpec, split: Split) -> tuple[float, float]:
    """(loss, metric) of `model` on `split`, in fp32 and eval mode."""
    model.eval()
    outputs = model.logits(split.x)
    loss = loss_function(task)(outputs, training_targets(model, split.y)).item()
    if task.kind == "classification":
        return loss, (outputs.argmax(dim=1) == split.y).float().mean().item()
    values = model.head(outputs)
    return loss, torch.mean((values - split.y) ** 2).item()


def plot_curves(history: History, task: TaskSpec, path: Path) -> None:
    """Train/validation loss and the validation metric per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [stats.epoch for stats in history.epochs]
    figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    loss_axes.plot(epochs, [s.train_loss for s in history.epochs], label="train")
    loss_axes.plot(epochs, [s.validation_loss for s in history.epochs], label="validation")
    loss_axes.set(title=f"{task.name}: loss", xlabel="epoch", ylabel=_loss_name(task))
    if task.kind == "regression":
        loss_axes.set_yscale("log")
    loss_axes.legend()
    metric_axes.plot(epochs, [s.validation_metric for s in history.epochs], color="tab:green")
    metric_axes.set(
        title=f"{task.name}: validation {history.metric}", xlabel="epoch", ylabel=history.metric
    )
    if task.kind == "regression":
        metric_axes.set_yscale("log")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _loss_name(task: TaskSpec) -> str:
    return "cross-entropy" if task.kind == "classification" else "MSE (standardised target)"


@contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Run torch's CPU ops on `count` intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
