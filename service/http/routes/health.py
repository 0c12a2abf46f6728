"""Server metadata, liveness and readiness (the Open Inference Protocol's health endpoints)."""

from __future__ import annotations

from litestar import Controller, Request, get

from service.codecs.schemas import V2ServerMetadata
from service.http.routes.openapi import errors
from service.http.state import services
from service.services import EXTENSIONS, SERVER_NAME, SERVER_VERSION, readiness_problem


class HealthController(Controller):
    path = "/v2"
    tags = ["Open Inference Protocol v2"]

    @get("/", summary="Server metadata")
    async def server_metadata(self) -> V2ServerMetadata:
        return V2ServerMetadata(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    @get("/health/live", summary="Liveness")
    async def live(self) -> dict[str, bool]:
        return {"live": True}

    @get(
        "/health/ready",
        summary="Readiness: every loadable model loaded and warmed up (in every worker)",
        responses=errors(503),
    )
    async def ready(self, request: Request) -> dict[str, bool]:
        if (problem := readiness_problem(services(request))) is not None:
            raise problem
        return {"ready": True}
