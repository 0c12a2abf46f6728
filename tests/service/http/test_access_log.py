"""One JSON line per request with the request id, echoed to the client."""

from __future__ import annotations

import json

import httpx

from tests.service.conftest import Server, wait_until


def access_lines(server: Server, request_id: str) -> list[dict]:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("request_id") == request_id]


def test_incoming_request_id_is_echoed_and_logged(server: Server, http: httpx.Client) -> None:
    answer = http.post(
        "/v1/models/iris:predict",
        json={"instances": [[5.1, 3.5, 1.4, 0.2]]},
        headers={"X-Request-ID": "trace-42"},
    )
    assert answer.headers["x-request-id"] == "trace-42"
    wait_until(lambda: access_lines(server, "trace-42"), "the access log line")
    [line] = access_lines(server, "trace-42")
    assert line["level"] == "info"
    assert (line["method"], line["path"], line["status"]) == (
        "POST",
        "/v1/models/iris:predict",
        200,
    )
    assert (line["model"], line["version"], line["batch_size"]) == ("iris", 2, 1)
    assert line["latency_ms"] > 0


def test_request_id_is_generated_for_every_answer_even_404(http: httpx.Client) -> None:
    first = http.get("/no/such/endpoint").headers["x-request-id"]
    second = http.get("/v2/health/live").headers["x-request-id"]
    assert len(first) == 32  # 16 hex of process prefix, 16 of counter
    assert first != second


def test_unusable_request_id_is_replaced(http: httpx.Client) -> None:
    answer = http.get("/v2/health/live", headers={"X-Request-ID": "x" * 500})
    assert answer.headers["x-request-id"] != "x" * 500


def test_startup_lines_are_json_and_name_device_and_batching(server: Server) -> None:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    loaded = next(line for line in lines if line["message"] == "repository loaded")
    assert loaded["device"] == "cpu"
    assert loaded["models"]["iris"] == [1, 2]
    assert loaded["runtimes"]["iris/1"] == "torchscript on cpu"
    assert loaded["runtimes"]["iris/2"] == "onnxruntime on cpu"
    ready = "model iris version 2 ready (onnxruntime on cpu)"
    iris = next(line for line in lines if line["message"] == ready)
    assert (iris["runtime"], iris["device"], iris["max_batch_size"]) == ("onnxruntime", "cpu", 256)
    assert not [line for line in server.log().splitlines() if line and not line.startswith("{")]
