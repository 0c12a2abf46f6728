"""`/metrics` on the real server: stable names, per model and version, counts that add up."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


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
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_counters_histograms_and_gauges_move_with_requests(http: httpx.Client) -> None:
    iris = {"model": "iris", "version": "1"}
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

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

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


def test_process_metrics_of_the_client_library(http: httpx.Client) -> None:
    names = {name for name, _ in scrape(http)}
    assert "process_resident_memory_bytes" in names
    assert "python_info" in names
