"""The request hook: one JSON line and the request metrics per HTTP request, and the request
id that ties a client's call to them.

An ASGI wrapper around the whole app (404s included): honours an incoming `X-Request-ID` (or
makes one), echoes it in the response, and logs method, path, status and latency, plus what
the request's record (`service.request_record`) says: the model and version the route named,
the batch size the batcher's observer saw. A request that reached a model is counted and timed
in the metrics by the same record.
"""

from __future__ import annotations

import itertools
import logging
import os
import time

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics, statistics
from service.logs import BatchedLines, timestamp
from service.request_record import RequestRecord, open_record

REQUEST_ID = b"x-request-id"
MAX_ID_LENGTH = 128

log = logging.getLogger("service.access")


# Generated ids: a random per-process prefix and a counter. Unique across processes and
# restarts without a uuid4 per request (its os.urandom call was a visible share of the event
# loop's time).
_PREFIX = os.urandom(8).hex()
_counter = itertools.count(1)


def request_id_of(scope: Scope) -> bytes:
    """The client's X-Request-ID when it is short and printable, else a fresh one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID:
            if 0 < len(value) <= MAX_ID_LENGTH and value.isascii() and value.decode().isprintable():
                return value
            break
    return f"{_PREFIX}{next(_counter):016x}".encode()


class AccessLog:
    """ASGI middleware: request id in and out, one structured log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.lines = BatchedLines()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = request_id_of(scope)
        record = open_record()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")
                if isinstance(headers, list):  # each answer's own list: extend it in place
                    headers.append((REQUEST_ID, request_id))
                else:
                    message["headers"] = [*(headers or ()), (REQUEST_ID, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - began
            if record.endpoint and record.model and record.version is not None:
                metrics.request_done(record.endpoint, record.model, record.version, status, elapsed)
                statistics.request_done(record.model, record.version, status, elapsed)
            if log.isEnabledFor(logging.INFO):
                self.lines.write(access_line(record, request_id, scope, status, elapsed))


class AccessLine(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One request's line: the keys of every log line (`service.logs.json_line`), the model's
    when it reached one (None is left out), then the request's. A struct encodes faster than
    the dict."""

    time: str
    level: str
    logger: str
    message: str
    model: str | None = None
    version: int | None = None
    batch_size: int | None = None
    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float


def access_line(
    record: RequestRecord, request_id: bytes, scope: Scope, status: int, elapsed_s: float
) -> AccessLine:
    return AccessLine(
        time=timestamp(time.time()),
        level="info",
        logger=log.name,
        message="request",
        model=record.model,
        version=record.version,
        batch_size=record.batch_size,
        request_id=request_id.decode(),
        method=scope["method"],
        path=scope["path"],
        status=status,
        latency_ms=round(elapsed_s * 1e3, 3),
    )
