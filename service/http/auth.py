"""The API key on HTTP: a Litestar guard over `service.api_key`, for the model and repository
routes."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.api_key import check_key, presented_key
from service.http.state import services


def request_key(connection: ASGIConnection) -> str | None:
    return presented_key(connection.headers.get)


async def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A Litestar guard, installed only when a key is set (`create_app`): with no key the
    model routes run no guard at all. Async, or Litestar would run it on a thread per request."""
    check_key(services(connection).settings, request_key(connection))
