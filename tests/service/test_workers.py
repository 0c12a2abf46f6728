"""`--workers N`: settings reach every worker through the environment (uvicorn's factory call),
and the server is ready only once every worker is (service.workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.http.app import create_app
from service.http.state import app_services
from service.settings import Settings
from service.workers import BOARD_VARIABLE, LOADING, READY, WorkerBoard
from tests.service.conftest import start_server, wait_until

OK_REQUESTS = (
    "mlp_serve_inference_requests_total"
    '{endpoint="v1/predict",model="iris",status="200",version="2"}'
)
ROWS = 'mlp_serve_inference_rows_total{model="iris",version="2"}'


def test_two_workers_serve_with_the_settings_from_the_environment(
    bundled_repo: Path, tmp_path: Path
) -> None:
    server = start_server(
        bundled_repo, tmp_path / "server.log", workers="2", max_rows_per_request="3"
    )
    try:
        # start_server returns at the first ready answer; readiness counts every worker's
        # board entry, so both have loaded and any connection may reach either of them.
        with server.client() as client:
            rows = {"instances": [[5.1, 3.5, 1.4, 0.2]] * 3}
            for _ in range(8):  # connections land on either worker
                answer = client.post(
                    "/v1/models/iris:predict", json=rows, headers={"Connection": "close"}
                )
                assert answer.status_code == 200
                too_many = client.post(
                    "/v1/models/iris:predict",
                    json={"instances": rows["instances"] * 2},
                    headers={"Connection": "close"},
                )
                assert too_many.status_code == 413  # SERVE_MAX_ROWS_PER_REQUEST in each worker
            for _ in range(6):  # whichever worker answers the scrape sees both workers' counts
                text = client.get("/metrics", headers={"Connection": "close"}).text
                assert f"{OK_REQUESTS} 8.0" in text
                assert f"{ROWS} 24.0" in text
    finally:
        assert server.stop() == 0
    assert server.log().count("Started server process") == 2


def second_process() -> subprocess.Popen[bytes]:
    """A real process to play the other worker, alive until `end`."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )


def end(process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=30)


def test_the_board_is_ready_when_every_live_worker_is(tmp_path: Path) -> None:
    this = WorkerBoard(tmp_path, workers=2)
    other_process = second_process()
    other = WorkerBoard(tmp_path, workers=2, pid=other_process.pid)
    try:
        this.post(READY)
        other.post(LOADING)
        assert this.ready_count() == 1  # of 2: not ready
        other.post(READY)
        assert this.ready_count() == 2  # of 2: ready
    finally:
        end(other_process)
    # A dead worker's entry is dropped: uvicorn's replacement has to load before it counts.
    assert this.states() == {os.getpid(): READY}
    assert not (tmp_path / str(other_process.pid)).exists()
    assert this.ready_count() == 1
    this.leave()
    assert this.states() == {}


def test_a_worker_board_file_that_is_not_a_live_workers_is_ignored(tmp_path: Path) -> None:
    board = WorkerBoard(tmp_path, workers=1)
    board.post(READY)
    (tmp_path / "1abc").write_text("ready 1")  # not a pid
    (tmp_path / "12").write_text("garbage")  # not a board line
    (tmp_path / str(os.getppid())).write_text("ready 0")  # a live pid, another start time
    assert board.states() == {os.getpid(): READY}


def test_readiness_answers_503_until_every_worker_on_the_board_is_ready(
    bundled_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BOARD_VARIABLE, str(tmp_path / "board"))
    app = create_app(Settings(models=bundled_repo, device="cpu", workers=2))
    other_process = second_process()
    try:
        other = WorkerBoard(tmp_path / "board", workers=2, pid=other_process.pid)
        other.post(LOADING)
        with TestClient(app) as client:
            wait_until(lambda: app_services(app).registry.ready, "this worker's models")
            assert client.get("/v1/models/iris").status_code == 200  # this worker serves
            not_ready = client.get("/v2/health/ready")
            assert not_ready.status_code == 503
            assert not_ready.json() == {"error": "1 of 2 worker processes are ready"}
            other.post(READY)
            assert client.get("/v2/health/ready").status_code == 200
            end(other_process)  # uvicorn replaces a dead worker: wait for it to load
            assert client.get("/v2/health/ready").status_code == 503
        assert not (tmp_path / "board" / str(os.getpid())).exists()  # left at shutdown
    finally:
        if other_process.poll() is None:
            end(other_process)
