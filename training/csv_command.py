"""`python -m training csv PATH --target COLUMN --name NAME`: train on your own CSV file.

The header row names the columns; every column but the target is a numeric feature. The model
is published as the next version of NAME in the repository, like the bundled tasks' models.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modelrepo.config import ConfigError
from training import export
from training.cli import OneLineParser, add_device_option, positive_float, positive_int, progress
from training.fit import cpu_threads
from training.pipeline import RunOptions, TaskResult, train_task
from training.tabular import (
    DEFAULTS,
    BadData,
    Baseline,
    decide_target,
    read_table,
    tabular_task,
)

PROG = "mlp-train csv"
# A tabular MLP's matrices are too small to share out: more intra-op threads only wait on each
# other (wine's 100 epochs: 1.4 s on one thread, 24 s on two, on 2 busy cores).
TRAINING_THREADS = 1


def model_name(text: str) -> str:
    try:
        return export.check_model_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("path", type=Path, help="the CSV file (comma-separated, UTF-8)")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument(
        "--name", required=True, type=model_name, help="the model's name in the repository"
    )
    parser.add_argument(
        "--task",
        choices=["auto", "classification", "regression"],
        default="auto",
        help="auto (default): text or at most 20 distinct integers are classes, other numbers "
        "a regression",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("models"),
        help="model repository to publish into (default: models/)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, help=f"training epochs (default: {DEFAULTS.epochs})"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, help=f"batch size (default: {DEFAULTS.batch_size})"
    )
    parser.add_argument(
        "--lr", type=positive_float, help=f"peak learning rate (default: {DEFAULTS.lr:g})"
    )
    parser.add_argument("--seed", type=int, default=0, help="split and training seed (default: 0)")
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    return parser.parse_args(argv)


def summary(result: TaskResult, trivial: Baseline) -> str:
    (bar,) = result.card.bars
    verdict = "PASS" if result.passed else "FAIL"
    return (
        f"{result.card.name}: {bar.metric}={bar.value:.4g} (baseline {trivial.value:.4g}, "
        f"{trivial.description}) {verdict} in {result.wall_time_s:.1f}s "
        f"(fit {result.fit_time_s:.1f}s) -> {result.path}"
    )


def fail(error: Exception) -> int:
    print(f"{PROG}: error: {error}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        table = read_table(args.path, args.target)
        target = decide_target(table, args.task)
        task, trivial = tabular_task(table, target, args.name, args.seed)
        export.check_config_fits(task, args.repo / task.name)
    except (BadData, export.ShapeConflict, ConfigError) as error:
        return fail(error)
    print(f"{table.source}: {target.kind}: {target.reason}", flush=True)
    options = RunOptions(
        data_dir=args.path.parent,
        repo=args.repo,
        seed=args.seed,
        device=args.device,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
    )
    bar, on_epoch = progress(task, options.hyperparameters(task).epochs, args.quiet)
    try:
        with cpu_threads(TRAINING_THREADS):
            result = train_task(task, options, on_epoch)
    except (export.ExportMismatch, export.ShapeConflict) as error:
        return fail(error)
    finally:
        bar.close()
    print(summary(result, trivial), flush=True)
    return 0
