"""How the HTTP routes reach the server's parts, one way: `services(connection)`."""

from __future__ import annotations

from litestar import Litestar
from litestar.connection import ASGIConnection

from service.services import Services

STATE_KEY = "services"


def services(connection: ASGIConnection) -> Services:
    """The services of the app serving `connection` (a plain lookup: Litestar's dependency
    injection was a measurable share of an iris prediction on the inference path)."""
    return connection.app.state[STATE_KEY]


def app_services(app: Litestar) -> Services:
    """The same, from the app itself (its lifespan, tests)."""
    return app.state[STATE_KEY]
