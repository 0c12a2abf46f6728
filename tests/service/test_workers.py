"""`--workers N`: settings reach every worker through the environment (uvicorn's factory call),
and the server is ready only once every worker is (service.workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.workers import LOADING, READY, WorkerBoard
from tests.conftest import BUNDLED_MODELS
from tests.service.conftest import start_server

OK_REQUESTS = (
    "mlp_serve_inference_requests_total"
    '{endpoint="v1/predict",model="iris",status="200",version="1"}'
)
ROWS = 'mlp_serve_inference_rows_total{model="iris",version="1"}'


def test_two_workers_serve_with_the_settings_from_the_environment(tmp_path: Path) -> None:
    server = start_server(
        BUNDLED_MODELS, tmp_path / "server.log", workers="2", max_rows_per_request="3"
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


def test_the_board_is_ready_when_every_live_worker_is(tmp_path: Path) -> None:
    this = WorkerBoard(tmp_path, workers=2)
    # A real second process, alive until its stdin closes.
    other_process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    other = WorkerBoard(tmp_path, workers=2, pid=other_process.pid)
    try:
        this.post(READY)
        other.post(LOADING)
        assert (this.ready_count(), this.all_ready()) == (1, False)
        other.post(READY)
        assert (this.ready_count(), this.all_ready()) == (2, True)
    finally:
        assert other_process.stdin is not None
        other_process.stdin.close()
        other_process.wait(timeout=30)
    # A dead worker's entry is dropped: uvicorn's replacement has to load before it counts.
    assert this.states() == {os.getpid(): READY}
    assert not (tmp_path / str(other_process.pid)).exists()
    assert not this.all_ready()
    this.leave()
    assert this.states() == {}
