"""Session-wide fixtures: a tiny model repository trained once through the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# An app built in a test process starts no gRPC server on the default port 8001 (another test
# run, or a server on this machine, may hold it); tests of gRPC ask for a port of their own.
os.environ.setdefault("SERVE_GRPC_PORT", "0")
MNIST_FIXTURE = ROOT / "tests" / "fixtures" / "mnist"
MODELS_DIR = ROOT / "models"
# The committed repository, named one by one: `make train` adds versions to models/ (untracked,
# and the new default), and no test may see them.
BUNDLED_VERSIONS = {
    "binary": ("1", "2"),
    "iris": ("1", "2"),
    "mnist": ("1", "2", "3", "4"),
    "regression": ("1", "2"),
}
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


def copy_bundled(root: Path, *names: str) -> Path:
    """`root` holding the bundled models `names` (default all): each one's config.pbtxt and its
    committed versions, whatever else models/ holds."""
    for name in names or BUNDLED_VERSIONS:
        (root / name).mkdir(parents=True)
        shutil.copy(MODELS_DIR / name / "config.pbtxt", root / name / "config.pbtxt")
        for version in BUNDLED_VERSIONS[name]:
            shutil.copytree(MODELS_DIR / name / version, root / name / version)
    return root


@pytest.fixture(scope="session")
def bundled_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the bundled models, shared by the tests that only read it."""
    return copy_bundled(tmp_path_factory.mktemp("bundled") / "models")


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four tasks trained for one epoch (MNIST on the committed few-hundred-digit fixture)."""
    repo = tmp_path_factory.mktemp("tiny-repo")
    run_training("all", "--repo", repo, "--data-dir", MNIST_FIXTURE, *TINY_BUDGET)
    return repo
