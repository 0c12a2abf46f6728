"""Time limits that a server with short ones must keep: the request timeout on each route, the
cap on OIP's own `timeout`, and a queue delay above 0 that cuts a partial batch.

The session server's limits are long (60 s) and its queue delays 0, so a limit replaced by "for
ever" would pass there. Here the request timeout is 2 s and iris waits 50 ms for more rows: a
request that outlives them has lost its limit. The bounds below are generous (the requests'
client timeout, 30 s); no test asserts how soon an answer came.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import copy_bundled
from tests.service.conftest import Server, start_server, wait_until
from tests.service.fixture_models import Gate, write_gated_model

REQUEST_TIMEOUT_S = "2"
QUEUE_DELAY_US = 50_000
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.9, 3.1, 5.4, 2.1]]


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Gate:
    return Gate(tmp_path_factory.mktemp("deadline-gate") / "gate.bin")


@pytest.fixture(scope="module")
def short_server(tmp_path_factory: pytest.TempPathFactory, gate: Gate) -> Iterator[Server]:
    root = copy_bundled(tmp_path_factory.mktemp("deadlines") / "models", "iris")
    config = root / "iris" / "config.pbtxt"
    config.write_text(
        config.read_text().replace(
            "max_queue_delay_microseconds: 0", f"max_queue_delay_microseconds: {QUEUE_DELAY_US}"
        )
    )
    write_gated_model(root, gate, max_batch_size=8)
    log = tmp_path_factory.mktemp("deadlines-log") / "server.log"
    server = start_server(root, log, request_timeout_s=REQUEST_TIMEOUT_S, drain_timeout_s="2")
    yield server
    server.stop()


@pytest.fixture
def pool(gate: Gate) -> Iterator[ThreadPoolExecutor]:
    """Threads for held requests; the gate opens before the pool waits for them."""
    with ThreadPoolExecutor(4) as pool:
        try:
            yield pool
        finally:
            gate.open()


def post(server: Server, path: str, body: dict) -> httpx.Response:
    with server.client() as client:  # 30 s: a request waiting for ever fails here
        return client.post(path, json=body)


def stats(server: Server, name: str) -> dict[str, int]:
    with server.client() as client:
        status = client.get(f"/v1/models/{name}").json()
        return status["stats"][status["default_version"]]


def test_iris_waits_for_more_rows(short_server: Server) -> None:
    assert stats(short_server, "iris")["max_queue_delay_ms"] == QUEUE_DELAY_US / 1e3


def test_partial_batch_is_cut_once_the_delay_is_over(short_server: Server) -> None:
    """Three rows where iris takes 256: nothing else comes, the delay ends, one batch runs."""
    before = stats(short_server, "iris")
    answer = post(short_server, "/v1/models/iris:predict", {"instances": IRIS_ROWS})
    assert answer.status_code == 200, answer.text
    assert [p["label"] for p in answer.json()["predictions"]] == [0, 1, 2]
    after = stats(short_server, "iris")
    assert after["batches"] - before["batches"] == 1
    assert after["rows_inferred"] - before["rows_inferred"] == 3


def v2_request(timeout_us: int) -> dict:
    tensor = {"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4}
    return {"inputs": [tensor], "parameters": {"timeout": timeout_us}}


def test_request_timeout_holds_on_v1_and_caps_the_v2_timeout(
    short_server: Server, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    """With the model held for ever, v1 answers 504 after SERVE_REQUEST_TIMEOUT_S, and a v2
    request asking for a day is cut at the same limit."""
    entries = gate.entries
    gate.close()
    v1: Future[httpx.Response] = pool.submit(
        post, short_server, "/v1/models/gated:predict", {"instances": [[1.0] * 4]}
    )
    wait_until(lambda: gate.entries > entries, "the v1 batch inside the model")
    a_day_us = 86_400 * 10**6
    v2 = pool.submit(post, short_server, "/v2/models/gated/infer", v2_request(a_day_us))
    for answer in (v1.result(), v2.result()):  # with the gate still closed
        assert answer.status_code == 504, answer.text
        assert f"did not answer within {REQUEST_TIMEOUT_S} s" in answer.json()["error"]
