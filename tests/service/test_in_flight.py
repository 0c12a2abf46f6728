"""A lone request on an idle ONNX Runtime model runs on the event loop; a request with company
in the server (here: another one whose body is still arriving) queues and batches as before."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import copy_bundled
from tests.service.conftest import Server, start_server

IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("in-flight")
    models = copy_bundled(root / "models", "iris")
    started = start_server(models, root / "server.log", inline_max_us="1000000")
    yield started
    started.stop()


def iris_stats(http: httpx.Client) -> dict[str, int]:
    return http.get("/v1/models/iris").json()["stats"]["2"]


def predict(http: httpx.Client) -> None:
    answer = http.post("/v1/models/iris:predict", json=IRIS)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["class_name"] == "setosa"


def test_lone_requests_run_inline(server: Server) -> None:
    with server.client() as http:
        before = iris_stats(http)
        assert before["inline_max_rows"] == 32
        for _ in range(3):
            predict(http)
        after = iris_stats(http)
    assert after["inline_requests"] - before["inline_requests"] == 3
    assert after["batches"] - before["batches"] == 3


def test_a_request_with_company_goes_through_the_batcher(server: Server) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    body = json.dumps(IRIS).encode()
    head = (
        f"POST /v1/models/iris:predict HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with server.client() as http, socket.create_connection((host, int(port)), timeout=30) as slow:
        before = iris_stats(http)
        slow.sendall(head + body[:5])  # in the server from now on, its body still to come
        predict(http)
        during = iris_stats(http)
        slow.sendall(body[5:])
        answer = b""
        while b"setosa" not in answer:
            answer += slow.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        predict(http)  # alone again: the slow request was answered
        after = iris_stats(http)
    assert during["inline_requests"] == before["inline_requests"]
    assert during["batches"] - before["batches"] == 1
    assert after["inline_requests"] - during["inline_requests"] == 2  # the slow one, and the last
