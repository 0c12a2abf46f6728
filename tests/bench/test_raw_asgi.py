"""The raw ASGI ceiling answers every route the bench sends it as the Litestar ceiling does: a
real server on port 0 against the ceiling in process, with the bench's own bodies."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from bench import raw_asgi
from bench.bodies import Body, multipart_body, write_bodies
from bench.ceiling import create_app
from bench.launch import launch, terminate
from bench.scenarios import build_scenarios
from tests.conftest import ROOT

# (path, body) of every request the bench sends the raw ceiling.
RAW_REQUESTS = sorted(
    {
        (t.path, t.body)
        for s in build_scenarios()
        for system, t in s.targets.items()
        if system == "raw"
    }
)
IMAGE_BODIES = {"png-raw": "png-raw", "jpeg-raw": "jpeg-raw", "png-multipart": "png-raw"}


@pytest.fixture(scope="module")
def bodies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Body]:
    return write_bodies(tmp_path_factory.mktemp("bodies"))


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`python -m bench.raw_asgi` as the bench starts it (port 0, named in its log)."""
    log = tmp_path_factory.mktemp("raw") / "raw.log"
    command = [sys.executable, "-m", "bench.raw_asgi"]
    process, base_url = launch(command, log, cwd=ROOT, env=dict(os.environ), timeout_s=60)
    try:
        yield base_url, log
    finally:
        terminate(process)


@pytest.fixture(scope="module")
def ceiling() -> Iterator[TestClient[Any]]:
    with TestClient(create_app()) as client:
        yield client


def post(client: httpx.Client | TestClient[Any], path: str, body: Body) -> httpx.Response:
    headers = {"Content-Type": body.content_type}
    return client.post(path, content=body.path.read_bytes(), headers=headers)


@pytest.mark.parametrize(("path", "body_name"), RAW_REQUESTS)
def test_raw_answers_every_bench_request_as_the_ceiling(
    raw_server: tuple[str, Path],
    ceiling: TestClient[Any],
    bodies: dict[str, Body],
    path: str,
    body_name: str,
) -> None:
    with httpx.Client(base_url=raw_server[0]) as client:
        raw = post(client, path, bodies[body_name])
    expected = post(ceiling, path, bodies[body_name])
    assert (raw.status_code, raw.headers["content-type"]) == (200, "application/json")
    assert raw.json() == expected.json()
    if body_name in IMAGE_BODIES:  # the image's bytes were read, not just the request's
        image = bodies[IMAGE_BODIES[body_name]].path.read_bytes()
        assert raw.json()["predictions"][0]["size"] == len(image)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v2/health/ready"), ("GET", "/nowhere"), ("GET", "/v1/models/iris:predict")],
)
def test_raw_answers_readiness_and_unknown_routes_as_the_ceiling(
    raw_server: tuple[str, Path], ceiling: TestClient[Any], method: str, path: str
) -> None:
    raw = httpx.request(method, raw_server[0] + path)
    expected = ceiling.request(method, path)
    if expected.status_code == 405:  # Litestar tells a wrong method apart; raw has no routes
        assert raw.status_code == 404
    else:
        assert (raw.status_code, raw.json()) == (expected.status_code, expected.json())


BROKEN_MULTIPART = multipart_body(b"\x89PNG", "a.png", "image/png")[0][:-8]


@pytest.mark.parametrize(
    ("path", "content", "content_type"),
    [
        ("/v1/models/iris:predict", b'{"instances": "x"}', "application/json"),
        ("/v2/models/iris/infer", b'{"inputs": [{"name": "x"}]}', "application/json"),
        ("/v1/models/mnist:predict-image", b"--x\r\n", "multipart/form-data"),
        (
            "/v1/models/mnist:predict-image",
            BROKEN_MULTIPART,
            multipart_body(b"", "a.png", "image/png")[1],
        ),
    ],
    ids=["v1 JSON", "v2 JSON", "no boundary", "truncated form"],
)
def test_raw_rejects_a_malformed_body(
    raw_server: tuple[str, Path], path: str, content: bytes, content_type: str
) -> None:
    answer = httpx.post(
        raw_server[0] + path, content=content, headers={"Content-Type": content_type}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"]


def test_raw_server_runs_the_lifespan(raw_server: tuple[str, Path]) -> None:
    assert "Application startup complete." in raw_server[1].read_text()


def test_lifespan_completes_startup_and_shutdown() -> None:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(raw_asgi.app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
