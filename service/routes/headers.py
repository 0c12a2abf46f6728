"""Request headers read straight from the ASGI scope.

Litestar's `request.headers` builds a multi-dict of every header on first use: on the predict
path that was more work than the one or two headers it needs.
"""

from __future__ import annotations

from litestar import Request


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
