"""Benchmark runs write to the git-ignored bench/runs/, so a run never rewrites the committed
reports in bench/results/ unless it is asked to (`--out bench/results`)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.harness import RUNS
from tests.conftest import ROOT

BENCHMARKS = [
    "bench.__main__",
    "bench.model_capacity",
    "bench.serve_batching",
    "bench.serve_uploads",
    "bench.training_speed",
]


@pytest.mark.parametrize("module", BENCHMARKS)
def test_a_run_writes_to_bench_runs_unless_told_otherwise(module: str) -> None:
    parse_args = importlib.import_module(module).parse_args
    assert parse_args([]).out == RUNS == ROOT / "bench" / "runs"
    assert parse_args(["--out", "bench/results"]).out == Path("bench/results")


def test_bench_runs_is_ignored_by_git_and_bench_results_is_not() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        check = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        return check.returncode == 0

    assert ignored("bench/runs/bench.md")
    assert not ignored("bench/results/bench.md")
