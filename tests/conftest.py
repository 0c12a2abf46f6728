"""Session-wide fixtures: a tiny model repository trained once through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MNIST_FIXTURE = ROOT / "tests" / "fixtures" / "mnist"
BUNDLED_MODELS = ROOT / "models"
TINY_BUDGET = ["--epochs", "1", "--seed", "0", "--quiet", "--device", "cpu", "--no-download"]


def run_training(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m training ARGS` in a subprocess, as a user runs it."""
    env = {**os.environ, "PYTHONWARNINGS": "error::FutureWarning"}
    return subprocess.run(
        [sys.executable, "-m", "training", *map(str, args)],
        capture_output=True,
        text=True,
        check=check,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four tasks trained for one epoch (MNIST on the committed few-hundred-digit fixture)."""
    repo = tmp_path_factory.mktemp("tiny-repo")
    run_training("all", "--repo", repo, "--data-dir", MNIST_FIXTURE, *TINY_BUDGET)
    return repo
