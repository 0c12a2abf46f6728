"""`--workers N`: settings reach every worker through the environment (uvicorn's factory call)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import BUNDLED_MODELS
from tests.service.conftest import start_server, wait_until

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
        with server.client() as client:
            # Each worker loads in the background and logs once it is ready; readiness probes
            # over new connections may all land on the first worker, so wait for both lines.
            wait_until(lambda: server.log().count('"repository loaded"') == 2, "both workers")
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
