"""Batching, queueing and failure isolation in the real server, held open by a gated model.

The gated model's forward pass waits on a gate the test controls; the test observes the
batcher through its counters (`GET /v1/models/gated` stats), never through wall-clock time.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.service.conftest import Server, wait_until
from tests.service.fixture_models import SENTINEL, Gate, gated_expected

PREDICT = "/v1/models/gated:predict"


@pytest.fixture
def pool(closed_gate: Gate) -> Iterator[ThreadPoolExecutor]:
    """Threads for held requests. The gate opens before the pool waits for them: after a
    failed assertion with the gate shut, they would otherwise wait for the request timeout."""
    with ThreadPoolExecutor(16) as pool:
        try:
            yield pool
        finally:
            closed_gate.open()


def stats(http: httpx.Client) -> dict[str, int]:
    return http.get("/v1/models/gated").json()["stats"]["1"]


def post_rows(server: Server, rows: np.ndarray, path: str = PREDICT) -> httpx.Response:
    with server.client() as client:
        return client.post(path, json={"instances": rows.tolist()})


def probabilities(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.array([p["probabilities"] for p in response.json()["predictions"]])


def hold_worker(server: Server, gate: Gate, pool: ThreadPoolExecutor) -> Future[httpx.Response]:
    """Close the gate and send one request; returns once its batch is inside the model."""
    entries = gate.entries
    gate.close()
    held = pool.submit(post_rows, server, np.ones((1, 4), np.float32))
    wait_until(lambda: gate.entries > entries, "the held batch to enter the model")
    return held


def test_concurrent_requests_share_forward_passes(server, http, closed_gate, pool) -> None:  # type: ignore[no-untyped-def]
    held = hold_worker(server, closed_gate, pool)
    before = stats(http)
    rows = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    futures = [pool.submit(post_rows, server, rows[i : i + 1]) for i in range(6)]
    wait_until(lambda: stats(http)["queued_rows"] == 6, "6 queued rows")
    closed_gate.open()
    answers = [probabilities(f.result()) for f in futures]
    probabilities(held.result())
    after = stats(http)
    passes = after["batches"] - before["batches"]
    assert passes < 6  # coalesced: the held batch finishing, then one batch of all six
    assert passes == 2
    assert after["rows_inferred"] - before["rows_inferred"] == 6 + 1  # counted once a pass ends
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(answer, gated_expected(rows[i : i + 1]), atol=1e-6)


def test_large_request_is_split_across_batches_in_order(server, http) -> None:  # type: ignore[no-untyped-def]
    before = stats(http)
    rows = np.random.default_rng(2).standard_normal((20, 4)).astype(np.float32)
    np.testing.assert_allclose(
        probabilities(post_rows(server, rows)), gated_expected(rows), atol=1e-6
    )
    after = stats(http)
    assert after["batches"] - before["batches"] == 3  # max_batch_size 8: 8 + 8 + 4
    assert after["rows_inferred"] - before["rows_inferred"] == 20


def test_full_queue_answers_503_at_once(server, http, closed_gate, pool) -> None:  # type: ignore[no-untyped-def]
    held = hold_worker(server, closed_gate, pool)
    rows = np.zeros((256, 4), np.float32)  # exactly the server's max_queue_size
    filling = pool.submit(post_rows, server, rows)
    wait_until(lambda: stats(http)["queued_rows"] == 256, "a full queue")
    rejected = http.post(PREDICT, json={"instances": [[0.0] * 4]})
    assert rejected.status_code == 503  # answered while the gate is still closed
    assert rejected.headers["Retry-After"] == "1"
    assert "rows queued" in rejected.json()["error"]
    closed_gate.open()
    np.testing.assert_allclose(probabilities(filling.result()), gated_expected(rows), atol=1e-6)
    probabilities(held.result())


def test_timeout_is_504_and_leaves_the_queue(server, http, closed_gate, pool) -> None:  # type: ignore[no-untyped-def]
    held = hold_worker(server, closed_gate, pool)
    before = stats(http)
    request = {
        "inputs": [{"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4}],
        "parameters": {"timeout": 1000},
    }
    timed_out = http.post("/v2/models/gated/infer", json=request)
    assert timed_out.status_code == 504  # answered while the gate is still closed
    assert "did not answer within" in timed_out.json()["error"]
    assert stats(http)["queued_rows"] == 0
    closed_gate.open()
    probabilities(held.result())
    after = stats(http)
    assert after["rows_inferred"] - before["rows_inferred"] == 1  # the held row only
    assert after["batches"] - before["batches"] == 1


def test_failing_row_fails_alone(server, http, closed_gate, pool) -> None:  # type: ignore[no-untyped-def]
    held = hold_worker(server, closed_gate, pool)
    good = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    bad = np.full((1, 4), SENTINEL, np.float32)
    futures = [pool.submit(post_rows, server, rows) for rows in (good[:1], bad, good[1:])]
    wait_until(lambda: stats(http)["queued_rows"] == 3, "3 queued requests")
    closed_gate.open()
    first, failed, last = (f.result() for f in futures)
    np.testing.assert_allclose(probabilities(first), gated_expected(good[:1]), atol=1e-6)
    np.testing.assert_allclose(probabilities(last), gated_expected(good[1:]), atol=1e-6)
    assert failed.status_code == 500
    assert "sentinel value -999 in the input" in failed.json()["error"]
    assert "Traceback" not in failed.text
    probabilities(held.result())


def test_model_that_raises_then_serves_the_next_request(server) -> None:  # type: ignore[no-untyped-def]
    failed = post_rows(server, np.full((1, 4), SENTINEL, np.float32))
    assert failed.status_code == 500
    assert set(failed.json()) == {"error"}
    rows = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(
        probabilities(post_rows(server, rows)), gated_expected(rows), atol=1e-6
    )


def test_disconnected_client_leaves_the_queue(server, http, closed_gate, pool) -> None:  # type: ignore[no-untyped-def]
    held = hold_worker(server, closed_gate, pool)
    before = stats(http)
    body = b'{"instances": [[1, 2, 3, 4]]}'
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        wait_until(lambda: stats(http)["queued_rows"] == 1, "the request to queue")
    wait_until(lambda: stats(http)["queued_rows"] == 0, "the abandoned rows to leave the queue")
    closed_gate.open()
    probabilities(held.result())
    after = stats(http)
    assert after["rows_inferred"] - before["rows_inferred"] == 1  # the held row only
