"""`python -m training TASK`: train, export and publish models into the model repository.

`python -m training csv PATH ...` trains on a CSV file of your own (training/csv_command.py);
`python -m training adopt DIR` writes a card for a Triton model that came without one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from training import adopt, csv_command
from training.cli import OneLineParser, add_device_option, positive_float, positive_int, progress
from training.data import DatasetMissing, default_data_dir
from training.export import ExportMismatch
from training.pipeline import RunOptions, TaskResult, train_task
from training.tasks import TASKS

# `python -m training NAME ...`: commands other than training a task, each a module with its
# own parse_args and main.
SUBCOMMANDS = {"adopt": adopt, "csv": csv_command}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]].parse_args(argv[1:])
    parser = OneLineParser(prog="mlp-train", description=__doc__)
    parser.add_argument("task", choices=[*TASKS, "all"], help="what to train")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where MNIST lives (MNIST/raw/ in torchvision's layout); "
        f"default: $MLP_SERVE_DATA_DIR or {default_data_dir()}",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("models"),
        help="model repository to publish into (default: models/)",
    )
    parser.add_argument("--epochs", type=positive_int, help="override the task's epochs")
    parser.add_argument("--batch-size", type=positive_int, help="override the task's batch size")
    parser.add_argument("--lr", type=positive_float, help="override the task's peak learning rate")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="augment training batches on the fly where the task has a recipe (mnist: pens, "
        "slant, contrast, chalk grain, then the service's image re-normalisation); on by default",
    )
    add_device_option(parser)
    parser.add_argument(
        "--no-download", action="store_true", help="never try to download a missing dataset"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a model misses its quality bar"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    return parser.parse_args(argv)


def summary(result: TaskResult) -> str:
    bars = ", ".join(
        f"{bar.metric}={bar.value:.6g} (bar {bar.op} {bar.threshold:g})" for bar in result.card.bars
    )
    verdict = "PASS" if result.passed else "FAIL"
    return (
        f"{result.card.name}: {bars} {verdict} in {result.wall_time_s:.1f}s "
        f"(fit {result.fit_time_s:.1f}s) -> {result.path}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]].main(argv[1:])
    args = parse_args(argv)
    options = RunOptions(
        data_dir=args.data_dir or default_data_dir(),
        repo=args.repo,
        seed=args.seed,
        device=args.device,
        download=not args.no_download,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        augment=args.augment,
    )
    names = list(TASKS) if args.task == "all" else [args.task]
    all_passed = True
    for name in names:
        task = TASKS[name]
        bar, on_epoch = progress(task, options.hyperparameters(task).epochs, args.quiet)
        try:
            result = train_task(task, options, on_epoch)
        except (DatasetMissing, ExportMismatch) as error:
            bar.close()
            print(f"mlp-train: error: {error}", file=sys.stderr)
            return 2
        bar.close()
        print(summary(result), flush=True)
        all_passed &= result.passed
    return 1 if args.strict and not all_passed else 0


if __name__ == "__main__":
    sys.exit(main())
