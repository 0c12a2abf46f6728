"""MNIST training speed: our fit and our whole CLI run vs a plain PyTorch reference loop.

    python -m bench.training_speed [--data-dir ../shared/data] [--rounds 2] [--out bench/runs]

The reference is a plain PyTorch loop: 784-512-256-10, dropout 0.2, AdamW lr 2e-3 with
one-cycle, batch 256, 12 epochs, data in memory. Rounds alternate reference and ours, on the
same machine in one run, and the medians are compared. Writes training.{md,json} to --out
(bench/runs/).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from bench.harness import RUNS
from training.data import default_data_dir, load_mnist
from training.fit import fit, native_bf16
from training.pipeline import RunOptions, build_model, measure
from training.tasks import MNIST, DataSource


def reference_fit(data_dir: Path) -> tuple[float, float]:
    """The plain loop: (seconds for epochs + test evaluation, test accuracy)."""
    splits = load_mnist(data_dir, seed=0)
    x = torch.cat([splits.train.x, splits.validation.x])
    y = torch.cat([splits.train.y, splits.validation.y])
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(256, 10),
    )
    mean, std = x.mean(), x.std()
    epochs, batch = 12, 256
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=2e-3, total_steps=epochs * ((len(x) + batch - 1) // batch)
    )
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(net((x[idx] - mean) / std), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    with torch.inference_mode():
        accuracy = (net((splits.test.x - mean) / std).argmax(1) == splits.test.y).float().mean()
    return time.perf_counter() - start, accuracy.item()


def our_fit(data_dir: Path) -> tuple[float, float]:
    """The package's own fit (epochs + evaluation), as `python -m training mnist` runs it."""
    device = torch.device("cpu")
    source = DataSource(data_dir, seed=0)
    splits = MNIST.load(source)
    torch.manual_seed(0)
    model = build_model(MNIST, splits.train)
    params = RunOptions(data_dir, Path("."), 0, device).hyperparameters(MNIST)
    start = time.perf_counter()
    fit(model, MNIST, splits, params, seed=0, bf16=native_bf16(device))
    metrics = measure(model, MNIST, splits, source)
    return time.perf_counter() - start, metrics["test_accuracy"]


def our_cli(data_dir: Path) -> tuple[float, float]:
    """The whole default CLI run: load, fit, evaluate, export, verify, plot."""
    with tempfile.TemporaryDirectory() as repo:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "training",
                "mnist",
                "--device",
                "cpu",
                "--quiet",
                "--data-dir",
                str(data_dir),
                "--repo",
                repo,
            ],
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
        card = json.loads((Path(repo) / "mnist" / "1" / "card.json").read_text())
    return seconds, card["metrics"]["test_accuracy"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.training_speed", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RUNS, help="report folder")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    runs: dict[str, list[tuple[float, float]]] = {"reference": [], "fit": [], "cli": []}
    for _ in range(args.rounds):
        runs["reference"].append(reference_fit(args.data_dir))
        runs["fit"].append(our_fit(args.data_dir))
        runs["cli"].append(our_cli(args.data_dir))
        print(json.dumps({k: v[-1] for k, v in runs.items()}), flush=True)
    median = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
    accuracy = {k: statistics.median(a for _, a in v) for k, v in runs.items()}
    report = {
        "threads": torch.get_num_threads(),
        "bf16": native_bf16(torch.device("cpu")),
        "rounds": args.rounds,
        "median_s": median,
        "test_accuracy": accuracy,
        "fit_ratio": median["fit"] / median["reference"],
        "cli_ratio": median["cli"] / median["reference"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    table = "\n".join(
        [
            "| run | median s | test accuracy | vs reference |",
            "|---|---:|---:|---:|",
            *(
                f"| {k} | {median[k]:.1f} | {accuracy[k]:.4f} "
                f"| {median[k] / median['reference']:.2f}x |"
                for k in runs
            ),
        ]
    )
    (args.out / "training.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
