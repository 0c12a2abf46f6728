"""What the routes share, reached one way: `services(connection)`."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Litestar
from litestar.connection import ASGIConnection

from service.codecs.uploads import ImagePreparer
from service.drain import Drain
from service.repository import ModelRegistry
from service.settings import Settings
from service.workers import WorkerBoard

STATE_KEY = "services"


@dataclass(frozen=True)
class Services:
    """The server's long-lived parts, built once by `create_app`."""

    settings: Settings
    registry: ModelRegistry
    images: ImagePreparer
    drain: Drain
    workers: WorkerBoard | None


def services(connection: ASGIConnection) -> Services:
    """The services of the app serving `connection` (a plain lookup: Litestar's dependency
    injection was a measurable share of an iris prediction on the inference path)."""
    return connection.app.state[STATE_KEY]


def app_services(app: Litestar) -> Services:
    """The same, from the app itself (its lifespan, tests)."""
    return app.state[STATE_KEY]
