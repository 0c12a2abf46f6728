"""`OneWriteCycle`: an answer's head goes out with its body in one write, and nothing of what
uvicorn's cycle sends changes (HEAD, chunked bodies, a closing connection)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from service.http.server import OneWriteCycle

OK = [(b"content-type", b"application/json"), (b"content-length", b"2")]


class Transport:
    """Records what the cycle writes, call by call."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append([data])

    def writelines(self, lines: tuple[bytes, ...]) -> None:
        self.calls.append(list(lines))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    @property
    def sent(self) -> bytes:
        return b"".join(b"".join(call) for call in self.calls)


def answer(
    messages: list[dict[str, Any]], method: str = "POST", keep_alive: bool = True
) -> Transport:
    transport = Transport()
    log = logging.getLogger("test")

    async def run() -> None:
        cycle = OneWriteCycle(
            scope={"method": method, "type": "http"},  # type: ignore[typeddict-item]
            transport=transport,  # type: ignore[arg-type]
            flow=FlowControl(transport),  # type: ignore[arg-type]
            logger=log,
            access_logger=log,
            access_log=False,
            default_headers=[(b"server", b"test")],
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=keep_alive,
            on_response=lambda: None,
        )
        for message in messages:
            await cycle.send(message)  # type: ignore[arg-type]

    asyncio.run(run())
    return transport


START = {"type": "http.response.start", "status": 200, "headers": OK}
BODY = {"type": "http.response.body", "body": b"{}", "more_body": False}
HEAD = (
    b"HTTP/1.1 200 OK\r\nserver: test\r\n"
    b"content-type: application/json\r\ncontent-length: 2\r\n\r\n"
)


def test_the_head_goes_out_with_the_body_in_one_write() -> None:
    transport = answer([START, BODY])
    assert transport.calls == [[HEAD, b"{}"]]


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_head_answer_sends_the_head_alone(keep_alive: bool) -> None:
    transport = answer([START, BODY], method="HEAD", keep_alive=keep_alive)
    assert transport.sent.startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.sent.endswith(
        b"content-length: 2\r\n" + (b"" if keep_alive else b"connection: close\r\n") + b"\r\n"
    )
    assert transport.closed is not keep_alive


def test_a_chunked_body_sends_its_head_with_the_first_chunk_and_the_rest_as_it_comes() -> None:
    start = {"type": "http.response.start", "status": 200, "headers": []}
    chunks = [
        {"type": "http.response.body", "body": b"ab", "more_body": True},
        {"type": "http.response.body", "body": b"cd", "more_body": False},
    ]
    transport = answer([start, *chunks])
    assert len(transport.calls) == 2
    assert transport.calls[0][0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert transport.calls[0][1:] == [b"2\r\nab\r\n"]
    assert transport.calls[1] == [b"2\r\ncd\r\n0\r\n\r\n"]


def test_a_connection_that_closes_after_the_answer_sends_it_whole_first() -> None:
    transport = answer([START, BODY], keep_alive=False)
    assert transport.sent.endswith(b"connection: close\r\n\r\n{}")
    assert transport.closed
