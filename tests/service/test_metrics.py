"""`/metrics` on the real server: stable names, per model and version, counts that add up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import Server, wait_until
from tests.service.fixture_models import Gate

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
GATED = {"model": "gated", "version": "1"}


def scrape(http: httpx.Client) -> dict[tuple[str, frozenset], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The series' value; a series never written fails (a gauge that reads 0 must say so)."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no series {name}{labels} in /metrics"
    return samples[key]


def test_counters_histograms_and_gauges_move_with_requests(http: httpx.Client) -> None:
    iris = {"model": "iris", "version": "2"}
    before = scrape(http)
    for rows in (1, 3):
        answer = http.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW] * rows})
        assert answer.status_code == 200
    assert http.post("/v1/models/iris:predict", json={"instances": [[1.0]]}).status_code == 422
    v2 = {
        "inputs": [{"name": "INPUT__0", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROW * 2}]
    }
    assert http.post("/v2/models/iris/infer", json=v2).status_code == 200
    after = scrape(http)

    def delta(name: str, **labels: str) -> float:  # a counter absent before had counted 0
        return value(after, name, **labels) - before.get((name, frozenset(labels.items())), 0.0)

    ok, bad = {**iris, "endpoint": "v1/predict", "status": "200"}, {"status": "422"}
    assert delta("mlp_serve_inference_requests_total", **ok) == 2
    assert delta("mlp_serve_inference_requests_total", **{**ok, **bad}) == 1
    v2_ok = {**iris, "endpoint": "v2/infer", "status": "200"}
    assert delta("mlp_serve_inference_requests_total", **v2_ok) == 1
    assert delta("mlp_serve_inference_rows_total", **iris) == 6
    batches = delta("mlp_serve_inference_batches_total", **iris)
    assert 1 <= batches <= 3
    assert delta("mlp_serve_inference_batch_size_count", **iris) == batches
    assert delta("mlp_serve_inference_batch_size_sum", **iris) == 6
    assert delta("mlp_serve_inference_compute_duration_seconds_count", **iris) == batches
    assert delta("mlp_serve_inference_queue_duration_seconds_count", **iris) == 3
    request_count = "mlp_serve_inference_request_duration_seconds_count"
    assert delta(request_count, **iris, endpoint="v1/predict") == 3
    assert value(after, "mlp_serve_inference_queue_depth", **iris) == 0
    assert value(after, "mlp_serve_model_ready", **iris) == 1
    assert value(after, "mlp_serve_model_ready", model="corrupt", version="1") == 0


def test_queue_depth_rises_while_the_model_holds_its_batch(
    server: Server, http: httpx.Client, closed_gate: Gate
) -> None:
    """The gauge operators autoscale on: rows waiting behind a busy model, back to 0 after."""
    closed_gate.close()
    entries = closed_gate.entries
    with ThreadPoolExecutor(max_workers=4) as pool, server.client() as other:

        def predict(value: float) -> int:
            body = {"instances": [[value] * 4]}
            return other.post("/v1/models/gated:predict", json=body).status_code

        try:
            holding = pool.submit(predict, 1.0)
            wait_until(lambda: closed_gate.entries > entries, "a batch inside the gated model")
            waiting = [pool.submit(predict, 2.0) for _ in range(3)]
            wait_until(
                lambda: value(scrape(http), "mlp_serve_inference_queue_depth", **GATED) == 3,
                "three rows queued behind the held batch",
            )
        finally:
            closed_gate.open()
        assert [f.result() for f in (holding, *waiting)] == [200] * 4
    assert value(scrape(http), "mlp_serve_inference_queue_depth", **GATED) == 0


def test_process_metrics_of_the_client_library(http: httpx.Client) -> None:
    names = {name for name, _ in scrape(http)}
    assert "process_resident_memory_bytes" in names
    assert "python_info" in names
