"""What every training command shares: the one-line parser, its option types, the progress bar."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import torch

from modelrepo.devices import resolve_device
from training.fit import EpochStats
from training.tasks import TaskSpec


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def torch_device(name: str) -> torch.device:
    """`auto`, `cpu`, `cuda` or `cuda:N` as the device torch runs on here."""
    try:
        return torch.device(resolve_device(name))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        type=torch_device,
        default="auto",
        help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)",
    )


def progress(task: TaskSpec, epochs: int, quiet: bool):  # type: ignore[no-untyped-def]
    """A tqdm bar over epochs showing losses and the validation metric."""
    from tqdm import tqdm

    bar = tqdm(
        total=epochs,
        desc=task.name,
        unit="epoch",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def on_epoch(stats: EpochStats) -> None:
        bar.set_postfix(
            train_loss=f"{stats.train_loss:.4g}",
            val_loss=f"{stats.validation_loss:.4g}",
            **{f"val_{task.metric}": f"{stats.validation_metric:.4g}"},
        )
        bar.update()

    return bar, on_epoch
