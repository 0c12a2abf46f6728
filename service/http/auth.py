"""The optional API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`, compared in
constant time. Set `SERVE_API_KEY` to require it on the model and repository endpoints."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import Forbidden, Unauthorized
from service.http.state import services
from service.settings import Settings


def presented_key(connection: ASGIConnection) -> str | None:
    headers = connection.headers
    if (key := headers.get("x-api-key")) is not None:
        return key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def check_key(settings: Settings, presented: str | None) -> None:
    if settings.api_key is None:
        return
    if not presented:
        raise Unauthorized("this endpoint needs an API key: send Authorization: Bearer <key>")
    expected = settings.api_key.get_secret_value().encode()
    if not hmac.compare_digest(presented.encode(), expected):
        raise Forbidden("the API key is not valid")


async def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A Litestar guard, installed only when a key is set (`create_app`): with no key the
    model routes run no guard at all. Async, or Litestar would run it on a thread per request."""
    check_key(services(connection).settings, presented_key(connection))
