"""A `--workers 2` server whose multiprocess metrics directory is on a full file system: the
metrics stop (one log line per worker), inference goes on, and no worker dies."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import copy_bundled
from tests.service.conftest import start_server

IRIS_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: room for the workers' board, not for one metrics file."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"needs permission to mount a small tmpfs: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_metrics_disk_stops_metrics_not_inference(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(small_disk))
    models = copy_bundled(tmp_path / "models", "iris")
    server = start_server(models, tmp_path / "server.log", workers="2")
    try:
        with server.client() as http:
            answers = [http.post("/v1/models/iris:predict", json=IRIS_ROW) for _ in range(40)]
            metrics = http.get("/metrics")
        assert [a.status_code for a in answers] == [200] * 40
        assert metrics.status_code == 200
        log = server.log()
        assert "died" not in log
        assert 1 <= log.count("metrics cannot be written") <= 2  # once per worker at most
    finally:
        assert server.stop() == 0
