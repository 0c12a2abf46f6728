"""The parts of a request the inference path needs, read straight from ASGI.

Litestar's `request.headers` builds a multi-dict of every header, and `request.body()` streams
through an async generator that builds it again for the content length: together 10 us of an
iris prediction's ~90 us in the app. Handlers that read their body here must not also call
`request.body()` (the body has been received).
"""

from __future__ import annotations

from litestar import Request

from service.errors import ClientDisconnected, PayloadTooLarge


def header(request: Request, name: bytes) -> str | None:
    """The first value of header `name` (lower-case bytes, as ASGI gives them), or None."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def media_type(request: Request) -> str:
    """The Content-Type without parameters, lower-case; "" when there is none."""
    value = header(request, b"content-type")
    return value.split(";", 1)[0].strip().lower() if value else ""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body; 413 past `limit` bytes (Litestar's request_max_body_size)."""
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


def body_too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (SERVE_MAX_BODY_BYTES); split the request"
