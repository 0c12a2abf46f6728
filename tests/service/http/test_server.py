"""Header limits, read deadlines and the connection cap (service.http.server) on a real server.

Clients are raw sockets, so that they can be oversized, slow or silent. Every wait is on the
server's answer or close (a socket timeout of SOCKET_TIMEOUT_S bounds each), or on its log;
timeouts are set to 1 s so that the tests meet them quickly, and no test asserts how soon.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.http.server import LimitLog
from tests.conftest import copy_bundled
from tests.service.conftest import Server, start_server, wait_until

SOCKET_TIMEOUT_S = 30
MAX_HEADER_BYTES = 65536  # the defaults, which these servers keep
MAX_HEADERS = 100
TIMEOUT_S = "1"
MiB = 1 << 20
IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
LIVE = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("limited")
    server = start_server(
        copy_bundled(directory / "models", "iris"),
        directory / "server.log",
        header_timeout_s=TIMEOUT_S,
        body_timeout_s=TIMEOUT_S,
    )
    yield server
    server.stop()


# --- raw HTTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error(self) -> str:
        return json.loads(self.body)["error"]


class Connection:
    """A raw client socket that reads answers off the stream (and sees the close)."""

    def __init__(self, server: Server) -> None:
        host, port = server.base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"closed without an answer after {self.buffer[:100]!r}"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        headers = {name.lower(): value for name, value in headers.items()}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            assert self._fill(), "closed in the middle of an answer"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed(self) -> bool:
        """Whether the server closes the connection with nothing more to say (bounded wait)."""
        return not self.buffer and not self._fill()

    def wait_readable(self, timeout_s: float) -> bool:
        return bool(self.buffer) or bool(select.select([self.sock], [], [], timeout_s)[0])

    def flood(self, prefix: bytes, filler: bytes, size: int, end: bytes = b"\r\n\r\n") -> int:
        """A head of `size` bytes (`prefix`, `filler` over and over, `end`) sent as fast as the
        server reads, stopping at its first answer or close. Returns the bytes sent."""
        pieces = head_pieces(prefix, filler, size - len(prefix) - len(end), end)
        pending, sent = memoryview(b""), 0
        self.sock.setblocking(False)
        try:
            while pending or (pending := next(pieces, memoryview(b""))):
                readable, writable, _ = select.select([self.sock], [self.sock], [], 30)
                if readable:
                    break
                assert writable, "the server neither reads nor answers"
                count = self.sock.send(pending)
                sent += count
                pending = pending[count:]
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed while we sent: its answer is still in our buffer
        finally:
            self.sock.settimeout(SOCKET_TIMEOUT_S)
        return sent

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            return False
        self.buffer += chunk
        return bool(chunk)


@pytest.fixture
def connection(limited: Server) -> Iterator[Connection]:
    connection = Connection(limited)
    yield connection
    connection.close()


def head_pieces(prefix: bytes, filler: bytes, fill: int, end: bytes) -> Iterator[memoryview]:
    block = memoryview(filler * max(1, 65536 // len(filler)))
    yield memoryview(prefix)
    while fill > 0:
        yield block[:fill]
        fill -= len(block)
    yield memoryview(end)


def head_of(size: int, start: bytes = LIVE) -> bytes:
    """A request head of exactly `size` bytes, padded with one header."""
    start += b"Connection: close\r\nX-Pad: "
    return start + b"p" * (size - len(start) - 4) + b"\r\n\r\n"


def logged(server: Server, setting: str, status: int | None) -> bool:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return any(line.get("limit") == setting and line["status"] == status for line in lines)


def assert_refused(connection: Connection, status: int, message: str) -> Answer:
    answer = connection.answer()
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert answer.error == message
    assert connection.closed()
    return answer


def predict_iris(server: Server) -> int:
    with server.client(headers={"Connection": "close"}) as client:
        return client.post("/v1/models/iris:predict", json=IRIS).status_code


def vm_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# --- header limits -------------------------------------------------------------------------

TOO_LARGE = (
    f"request line and headers are larger than {MAX_HEADER_BYTES} bytes (SERVE_MAX_HEADER_BYTES)"
)
TOO_MANY = f"request has more than {MAX_HEADERS} header fields (SERVE_MAX_HEADERS)"


@pytest.mark.parametrize("size", [MAX_HEADER_BYTES + 1, 8 * MiB, 200 * MiB])
def test_headers_past_the_byte_cap_get_431_and_a_close(
    limited: Server, connection: Connection, size: int
) -> None:
    sent = connection.flood(LIVE + b"Cookie: a=", b"b", size)
    assert_refused(connection, 431, TOO_LARGE)
    if size == 200 * MiB:
        assert sent < size  # answered while the client was still sending
    wait_until(lambda: logged(limited, "SERVE_MAX_HEADER_BYTES", 431), "the 431 logged")


def test_a_head_of_exactly_the_cap_is_served(connection: Connection) -> None:
    connection.send(head_of(MAX_HEADER_BYTES))
    assert connection.answer().status == 200


def fields(count: int) -> tuple[bytes, bytes, int, bytes]:
    """`Connection.flood` arguments for a head of `count` fields: LIVE has one (Host), and
    each "X: y" line is 6 bytes."""
    return LIVE, b"X: y\r\n", len(LIVE) + 6 * (count - 1) + 2, b"\r\n"


def test_more_header_fields_than_the_cap_get_431(limited: Server, connection: Connection) -> None:
    connection.flood(*fields(MAX_HEADERS + 1))
    assert_refused(connection, 431, TOO_MANY)
    wait_until(lambda: logged(limited, "SERVE_MAX_HEADERS", 431), "the 431 logged")


def test_200_000_header_fields_meet_the_byte_cap_first(connection: Connection) -> None:
    """The count is read when the head ends; past 65536 bytes no more of it is parsed."""
    connection.flood(*fields(200_000))
    assert_refused(connection, 431, TOO_LARGE)


def test_exactly_the_cap_of_header_fields_is_served(connection: Connection) -> None:
    connection.send(LIVE + b"X: y\r\n" * (MAX_HEADERS - 2) + b"Connection: close\r\n\r\n")
    assert connection.answer().status == 200


def test_a_body_read_with_its_head_does_not_count_as_headers(connection: Connection) -> None:
    body = json.dumps(IRIS).encode() + b" " * (4 * MAX_HEADER_BYTES)
    connection.send(
        b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    assert connection.answer().status == 200


def test_pipelined_requests_each_have_the_whole_cap(connection: Connection) -> None:
    keep_alive = head_of(MAX_HEADER_BYTES // 2).replace(b"Connection: close", b"Connection: keep")
    connection.send(keep_alive * 2 + head_of(MAX_HEADER_BYTES // 2))  # 1.5x the cap in one go
    assert [connection.answer().status for _ in range(3)] == [200, 200, 200]


def test_header_floods_leave_memory_flat_and_other_requests_served(limited: Server) -> None:
    answers: list[int] = []

    def flood(size: int) -> None:
        connection = Connection(limited)
        try:
            connection.flood(LIVE + b"Cookie: a=", b"b", size)
            answers.append(connection.answer().status)
        finally:
            connection.close()

    flood(MAX_HEADER_BYTES + 1)  # the refusal's own first allocations
    before = vm_rss_bytes(limited.process.pid)
    for size in (10 * MiB, 50 * MiB, 100 * MiB):
        flood(size)
        assert predict_iris(limited) == 200
    floods = [threading.Thread(target=flood, args=(100 * MiB,)) for _ in range(4)]
    for thread in floods:
        thread.start()
    assert predict_iris(limited) == 200
    for thread in floods:
        thread.join(timeout=120)
    assert predict_iris(limited) == 200
    growth = vm_rss_bytes(limited.process.pid) - before
    assert answers == [431] * 8
    assert growth < 50 * MiB, f"RSS grew {growth / MiB:.0f} MiB"


# --- read deadlines ------------------------------------------------------------------------

HEADER_LATE = f"request headers not complete within {TIMEOUT_S} s (SERVE_HEADER_TIMEOUT_S)"
BODY_LATE = f"no bytes of the request body for {TIMEOUT_S} s (SERVE_BODY_TIMEOUT_S)"


def test_silent_connections_are_closed_without_an_answer(limited: Server) -> None:
    silent = [Connection(limited) for _ in range(50)]
    try:
        assert predict_iris(limited) == 200  # served meanwhile
        assert all(connection.closed() for connection in silent)
    finally:
        for connection in silent:
            connection.close()
    wait_until(lambda: logged(limited, "SERVE_HEADER_TIMEOUT_S", None), "the close logged")


def test_headers_that_stop_coming_get_408(limited: Server, connection: Connection) -> None:
    connection.send(LIVE + b"X-Half: ")
    assert_refused(connection, 408, HEADER_LATE)
    wait_until(lambda: logged(limited, "SERVE_HEADER_TIMEOUT_S", 408), "the 408 logged")


def test_headers_trickling_in_get_408(connection: Connection) -> None:
    """A byte every 0.2 s (slowloris): each read is quick, the head as a whole is late."""
    trickle = iter(LIVE + b"X-Slow: " + b"s" * SOCKET_TIMEOUT_S * 5)
    while not connection.wait_readable(0.2):
        connection.send(bytes([next(trickle)]))
    assert_refused(connection, 408, HEADER_LATE)


def test_a_kept_alive_connection_has_the_header_timeout_for_its_next_request(
    connection: Connection,
) -> None:
    connection.send(LIVE + b"\r\n")
    assert connection.answer().status == 200
    connection.send(LIVE)  # the next request, never finished
    assert_refused(connection, 408, HEADER_LATE)


def test_a_body_that_stops_short_gets_408(limited: Server, connection: Connection) -> None:
    connection.send(
        b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"instances": '
    )
    assert_refused(connection, 408, BODY_LATE)
    wait_until(lambda: logged(limited, "SERVE_BODY_TIMEOUT_S", 408), "the 408 logged")


def test_a_body_in_gaps_shorter_than_the_timeout_is_served(connection: Connection) -> None:
    """The body timeout runs between reads, not over the body: 8 pieces 0.25 s apart (2 s in
    all, twice the timeout) are one request."""
    body = json.dumps(IRIS).encode()
    pieces = [body[i : i + 8] for i in range(0, len(body), 8)]
    connection.send(
        b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    for piece in pieces:
        assert not connection.wait_readable(0.25), connection.sock.recv(200)
        connection.send(piece)
    assert connection.answer().status == 200


# --- connection cap ------------------------------------------------------------------------

CAP = 8


def test_connections_past_the_cap_get_503_until_one_closes(tmp_path: Path) -> None:
    server = start_server(
        copy_bundled(tmp_path / "models", "iris"),
        tmp_path / "server.log",
        max_connections=str(CAP),
        header_timeout_s="60",
    )
    held: list[Connection] = []
    try:
        for _ in range(CAP):  # each answered, so each is counted by the server
            connection = Connection(server)
            held.append(connection)
            connection.send(LIVE + b"\r\n")
            assert connection.answer().status == 200
            connection.send(LIVE)  # half a request: no keep-alive timer, a 60 s header one
        refused = Connection(server)
        answer = assert_refused(
            refused,
            503,
            f"server is at its {CAP} open connections (SERVE_MAX_CONNECTIONS); retry later",
        )
        refused.close()
        assert answer.headers["retry-after"] == "1"
        wait_until(lambda: logged(server, "SERVE_MAX_CONNECTIONS", 503), "the 503 logged")
        held.pop().close()
        wait_until(lambda: live_status(server) == 200, "a connection served once one closed")
    finally:
        for connection in held:
            connection.close()
        server.stop()


def live_status(server: Server) -> int:
    try:
        return httpx.get(f"{server.base_url}/v2/health/live", timeout=SOCKET_TIMEOUT_S).status_code
    except httpx.TransportError:
        return 0


# --- workers and the log -------------------------------------------------------------------


def test_every_worker_enforces_the_limits(tmp_path: Path) -> None:
    server = start_server(
        copy_bundled(tmp_path / "models", "iris"), tmp_path / "server.log", workers="2"
    )
    try:
        for _ in range(8):  # connections land on either worker
            connection = Connection(server)
            connection.send(head_of(MAX_HEADER_BYTES + 1))
            assert_refused(connection, 431, TOO_LARGE)
            connection.close()
    finally:
        assert server.stop() == 0


def test_the_limit_log_holds_back_lines_within_its_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limit_log = LimitLog(interval_s=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="service.http.server"):
        for time_s in (0.0, 0.1, 0.5, 0.99, 1.0, 1.5, 2.2):
            now[0] = time_s
            limit_log.acted("SERVE_MAX_HEADERS", "too many", 431, "127.0.0.1:1")
        limit_log.acted("SERVE_MAX_HEADER_BYTES", "too large", 431, None)  # its own interval
    fields: list[dict[str, Any]] = [record.fields for record in caplog.records]  # type: ignore[attr-defined]
    assert [(field["limit"], field["held_back"]) for field in fields] == [
        ("SERVE_MAX_HEADERS", 0),
        ("SERVE_MAX_HEADERS", 3),
        ("SERVE_MAX_HEADERS", 1),
        ("SERVE_MAX_HEADER_BYTES", 0),
    ]
    assert [record.getMessage() for record in caplog.records][-1] == "too large"
