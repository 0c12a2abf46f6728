"""The inference path's own ASGI: the parts of a request it needs, and its answer.

Litestar's `request.headers` builds a multi-dict of every header, and `request.body()` streams
through an async generator that builds it again for the content length: together a tenth of
an iris prediction's time in the app. Handlers that read their body here must not also call
`request.body()` (the body has been received).
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Protocol

from litestar import Request
from litestar.types import Receive, Scope, Send

from service.codecs.answer import Answer
from service.errors import (
    ClientDisconnected,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)


class Connection(Protocol):
    """What the inference path reads of a request: its ASGI scope and receive. A Litestar
    `Request` is one; so is `RawRequest`, for the routes answered before Litestar's router."""

    @property
    def scope(self) -> Scope: ...

    @property
    def receive(self) -> Receive: ...


class RawRequest:
    """A request as ASGI gives it, no framework object around it."""

    __slots__ = ("receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive


def header(request: Connection, name: bytes) -> str | None:
    """The first value of header `name` (lower-case bytes, as ASGI gives them), or None."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def media_type(request: Connection) -> str:
    """The Content-Type without parameters, lower-case; "" when there is none."""
    value = header(request, b"content-type")
    return value.split(";", 1)[0].strip().lower() if value else ""


async def read_body(request: Connection, limit: int) -> bytes:
    """The whole body, decompressed when it says gzip or deflate; 413 past `limit` bytes.

    A Content-Length above the limit is refused before anything is read (so a client that
    sent `Expect: 100-continue` is not asked for the body); a compressed body is limited
    twice, as it arrives and as it inflates.
    """
    declared = encoding = None
    for key, value in request.scope["headers"]:
        if key == b"content-length":
            declared = value
        elif key == b"content-encoding":
            encoding = value.decode("latin-1").strip().lower()
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(body_too_large(limit))
    if encoding not in (None, "", "identity", *DECODERS):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or identity"
        )
    body = await receive_body(request, limit)
    if encoding in DECODERS:
        if len(body) > INFLATE_ON_LOOP_BYTES:  # inflating megabytes would stall every request
            return await asyncio.to_thread(inflate, body, encoding, limit)
        return inflate(body, encoding, limit)
    return body


async def receive_body(request: Connection, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":  # the client left mid-body
            raise ClientDisconnected("client disconnected before sending its whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(body_too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# Content-Encoding -> zlib's window bits: gzip's header, or zlib's (and raw deflate, which
# some clients send as "deflate", is tried when zlib's header is missing).
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
INFLATE_ON_LOOP_BYTES = 64 * 1024


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The decompressed body; 413 once it grows past `limit` (a bomb never inflates whole)."""
    wbits = DECODERS[encoding]
    if encoding == "deflate" and body[:1] and body[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate, without zlib's header
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise MalformedRequest(f"the body is not valid {encoding} data") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed {body_too_large(limit)}")
    if not inflater.eof:
        raise MalformedRequest(f"the {encoding} body is truncated")
    return data


def body_too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (SERVE_MAX_BODY_BYTES); split the request"


def query_flag(request: Request, name: str) -> bool:
    """`?name=true|false|1|0` (absent: false); anything else is a 400 naming the parameter."""
    if not request.scope["query_string"]:  # most requests: no query to parse
        return False
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise MalformedRequest(f"query parameter {name}={value!r} must be true or false")


def answer_headers(answer: Answer) -> list[tuple[bytes, bytes]]:
    """A codec answer's response headers: its type, its length and its own."""
    return [
        (b"content-type", answer.media_type),
        (b"content-length", b"%d" % len(answer.body)),
        *answer.headers,
    ]


async def send_response(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """A whole response as the two ASGI messages, with no framework object per answer."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class AnswerApp:
    """A codec's 200 answer as a bare ASGI app, for a Litestar handler to return.

    Litestar's Response -> ASGIResponse builds a header multi-dict and looks up encoders for
    every answer; a prediction needs two headers and a body.
    """

    __slots__ = ("body", "headers")

    def __init__(self, answer: Answer) -> None:
        self.body = answer.body
        self.headers = answer_headers(answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_response(send, 200, self.headers, self.body)
