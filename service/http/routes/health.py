"""Server metadata, liveness and readiness (the Open Inference Protocol's health endpoints)."""

from __future__ import annotations

from importlib.metadata import version

from litestar import Controller, Request, get

from service.codecs.schemas import V2ServerMetadata
from service.errors import ModelNotReady, Unavailable
from service.http.routes.openapi import errors
from service.http.state import services

SERVER_NAME = "mlp-serve"
SERVER_VERSION = version("mlp-serve")
# Triton's names for the extensions served: /v2/repository/* and Inference-Header-Content-Length.
EXTENSIONS = ["binary_tensor_data", "model_repository"]


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
        server = services(request)
        if server.drain.draining:
            raise Unavailable("shutting down: draining in-flight requests", retry_after_s=5)
        if not server.registry.ready:
            raise ModelNotReady("models are still loading")
        if server.registry.scan_problem is not None:
            raise ModelNotReady(server.registry.scan_problem)
        board = server.workers
        if board is not None and board.usable and (ready := board.ready_count()) < board.workers:
            raise ModelNotReady(f"{ready} of {board.workers} worker processes are ready")
        return {"ready": True}
