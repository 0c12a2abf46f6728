"""Overload at several times the queue's capacity: the excess is refused at once, the rest served.

The gated model's worker is held inside a forward pass (the gate closed) so nothing leaves the
queue, which on the session server holds 256 rows per model version (SERVE_MAX_QUEUE_SIZE). A
burst of twice that many concurrent one-row requests must split exactly into 256 accepted and
256 refused with 503 + Retry-After; then a flood of three times the capacity from 32 keep-alive
connections must be refused entirely, all while the gate still holds. Once it opens, every
accepted request answers 200. Everything is synchronised on counts (the batcher's counters,
finished requests), never on time; the 503s' rate and latency are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

from tests.service.conftest import Server, wait_until
from tests.service.fixture_models import Gate

PREDICT = "/v1/models/gated:predict"
CAPACITY = 256  # the session server's SERVE_MAX_QUEUE_SIZE
MAX_BATCH_SIZE = 8  # the gated model's config.pbtxt
BURST = 2 * CAPACITY
FLOOD_CONNECTIONS, FLOOD_PER_CONNECTION = 32, 24  # 768 requests: 3x the capacity
T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None
    body: dict[str, Any]
    latency_s: float


class Loop:
    """An event loop on its own thread, so that the test thread can watch the counters while
    hundreds of requests wait on the server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.close()


def request_bytes(value: float, keep_alive: bool) -> bytes:
    body = json.dumps({"instances": [[value] * 4]}).encode()
    return (
        f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}"
        "\r\n\r\n"
    ).encode() + body


async def read_answer(reader: asyncio.StreamReader, began: float) -> Answer:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:] if line)
    headers = {name.lower(): value for name, value in headers.items()}
    body = await reader.readexactly(int(headers["content-length"]))
    return Answer(
        int(head[0].split()[1]),
        headers.get("retry-after"),
        json.loads(body),
        time.perf_counter() - began,
    )


async def post_row(address: tuple[str, int], value: float) -> Answer:
    """One request on a connection of its own, in plain HTTP/1.1: with hundreds waiting at
    once, a client's connection pool would cost more than the server's answers."""
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request_bytes(value, keep_alive=False))
        return await read_answer(reader, began)
    finally:
        writer.close()
        await writer.wait_closed()


async def flood(address: tuple[str, int]) -> tuple[list[Answer], float]:
    """FLOOD_CONNECTIONS keep-alive connections, each sending FLOOD_PER_CONNECTION requests
    one after another; every answer and the wall time of the whole flood."""

    async def one_connection() -> list[Answer]:
        reader, writer = await asyncio.open_connection(*address)
        try:
            answers = []
            for _ in range(FLOOD_PER_CONNECTION):
                began = time.perf_counter()
                writer.write(request_bytes(1.0, keep_alive=True))
                answers.append(await read_answer(reader, began))
            return answers
        finally:
            writer.close()
            await writer.wait_closed()

    began = time.perf_counter()
    answers = await asyncio.gather(*(one_connection() for _ in range(FLOOD_CONNECTIONS)))
    return [answer for batch in answers for answer in batch], time.perf_counter() - began


def stats(http: httpx.Client) -> dict[str, int]:
    return http.get("/v1/models/gated").json()["stats"]["1"]


def assert_refused(answer: Answer) -> None:
    assert answer.status == 503, answer
    assert answer.retry_after == "1", answer
    assert list(answer.body) == ["error"], answer
    assert "rows queued" in answer.body["error"], answer


def report(refused: list[Answer], elapsed_s: float) -> None:
    latencies_ms = np.array([answer.latency_s for answer in refused]) * 1e3
    print(
        f"\noverload: {len(refused)} refusals over {FLOOD_CONNECTIONS} connections in "
        f"{elapsed_s:.2f} s = {len(refused) / elapsed_s:.0f} req/s; 503 latency p50 "
        f"{np.percentile(latencies_ms, 50):.1f} ms, p99 {np.percentile(latencies_ms, 99):.1f} ms"
    )


def test_excess_is_refused_at_once_and_the_accepted_all_complete(
    server: Server, http: httpx.Client, closed_gate: Gate, loop: Loop
) -> None:
    host, port = server.base_url.removeprefix("http://").split(":")
    address = (host, int(port))
    before = stats(http)
    assert before["queued_rows"] == 0
    entries = closed_gate.entries
    closed_gate.close()
    held = loop.submit(post_row(address, 0.0))
    wait_until(lambda: closed_gate.entries > entries, "the held batch to enter the model")

    burst = [loop.submit(post_row(address, 1.0)) for _ in range(BURST)]

    def finished() -> list[Answer]:
        return [future.result() for future in burst if future.done()]

    wait_until(lambda: len(finished()) == BURST - CAPACITY, "the burst's excess to be answered")
    assert stats(http)["queued_rows"] == CAPACITY
    for answer in finished():
        assert_refused(answer)

    refused, elapsed_s = loop.submit(flood(address)).result(timeout=60)
    assert len(refused) == FLOOD_CONNECTIONS * FLOOD_PER_CONNECTION
    for answer in refused:
        assert_refused(answer)
    assert stats(http)["queued_rows"] == CAPACITY
    assert len(finished()) == BURST - CAPACITY  # the gate still holds every accepted request
    assert not held.done()
    report(refused, elapsed_s)

    closed_gate.open()
    answers = [future.result(timeout=60) for future in burst]
    statuses = [answer.status for answer in answers]
    assert statuses.count(200) == CAPACITY
    assert statuses.count(503) == BURST - CAPACITY
    assert held.result(timeout=60).status == 200
    for answer in answers:
        if answer.status == 200:
            assert len(answer.body["predictions"][0]["probabilities"]) == 3
    after = stats(http)
    assert after["queued_rows"] == 0
    assert after["rows_inferred"] - before["rows_inferred"] == 1 + CAPACITY
    assert after["batches"] - before["batches"] == 1 + CAPACITY // MAX_BATCH_SIZE
    assert http.get("/v2/health/ready").status_code == 200
