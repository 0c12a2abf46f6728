"""The optional API key: `Authorization: Bearer <key>` or `X-API-Key: <key>` (HTTP headers or
gRPC metadata), compared in constant time. Set `SERVE_API_KEY` to require it on the model and
repository endpoints of both transports."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from service.errors import Forbidden, Unauthorized
from service.settings import Settings


def presented_key(lookup: Callable[[str], str | None]) -> str | None:
    """The key a client sent, from its headers or metadata (`lookup` takes a lower-case name)."""
    if (key := lookup("x-api-key")) is not None:
        return key
    scheme, _, credentials = (lookup("authorization") or "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def check_key(settings: Settings, presented: str | None) -> None:
    if settings.api_key is None:
        return
    if not presented:
        raise Unauthorized("this endpoint needs an API key: send Authorization: Bearer <key>")
    expected = settings.api_key.get_secret_value().encode()
    if not hmac.compare_digest(presented.encode(), expected):
        raise Forbidden("the API key is not valid")
