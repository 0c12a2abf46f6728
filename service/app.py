"""`create_app(settings)`: the Litestar application, its lifespan and its one error mapping."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from litestar import Litestar, MediaType, Request, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.response import File
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE

from service import drain, metrics
from service.access_log import AccessLog
from service.auth import check_key, presented_key, require_api_key
from service.errors import ServeError
from service.repository import ModelRegistry
from service.routes.asgi import body_too_large
from service.routes.openapi import union_answers_as_any_of
from service.routes.repository import RepositoryController
from service.routes.v1 import V1Controller
from service.routes.v2 import SERVER_VERSION, HealthController, V2ModelController
from service.settings import Settings
from service.uploads import ImagePreparer
from service.workers import LOADING, READY, WorkerBoard, worker_board

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"  # the browser demo: plain HTML, CSS and JS


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response(
        {"error": message}, status_code=status_code, headers=headers, media_type=MediaType.JSON
    )


def exception_handlers(settings: Settings) -> dict:
    """Every error becomes `{"error": "..."}` here, and only here; no traceback ever leaves."""

    def serve_error(_: Request, error: ServeError) -> Response:
        return error_response(error.status_code, str(error), error.headers)

    def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
            message = body_too_large(settings.max_body_bytes)
        elif error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        return error_response(error.status_code, message, error.headers)

    def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error; the incident was logged")

    return {ServeError: serve_error, HTTPException: http_error, Exception: unexpected}


async def load_models(registry: ModelRegistry, board: WorkerBoard | None) -> None:
    await registry.start()
    freeze_heap()
    if board is not None:
        board.post(READY)


async def poll_repository(registry: ModelRegistry) -> None:
    await registry.loaded.wait()
    await registry.poll_forever(registry.settings.poll_interval_s)


def freeze_heap() -> None:
    """Keep the garbage collector off the long-lived heap (torch, models, routes).

    A full collection walks every object torch and the app created at start-up: under load that
    stalled the event loop for ~100 ms, and p99 latency with it (132 ms -> 16 ms at c=64 once
    frozen). Young objects are still collected; the larger first threshold cuts collections
    per request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 1_000)


def model_routes(settings: Settings) -> Router:
    """The model and repository endpoints, behind the API key when one is set (and no guard
    at all otherwise: a guard costs every request a handler copy)."""
    return Router(
        path="/",
        route_handlers=[V1Controller, V2ModelController, RepositoryController],
        guards=[require_api_key] if settings.api_key is not None else [],
    )


def create_app(settings: Settings | None = None) -> Litestar:
    """The app; with no argument (uvicorn --factory, --workers N) settings come from SERVE_*."""
    settings = settings or Settings()
    registry = ModelRegistry(settings)
    preparer = ImagePreparer(settings.image_workers, settings.max_image_pixels)
    board = worker_board(settings.workers)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        torch.set_num_threads(settings.torch_threads)
        drain.install(settings.drain_delay_s)
        # Load in the background: liveness answers at once, readiness once all are warm.
        if board is not None:
            board.post(LOADING)
        tasks = [asyncio.create_task(load_models(registry, board), name="load-models")]
        if settings.poll_interval_s > 0:
            tasks.append(asyncio.create_task(poll_repository(registry), name="poll-repository"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await registry.stop()
            preparer.close()
            if board is not None:
                board.leave()
            metrics.worker_exited(os.getpid())

    @get("/metrics", summary="Prometheus metrics", tags=["Operations"], media_type=MediaType.TEXT)
    async def prometheus_metrics(request: Request) -> Response[bytes]:
        if settings.metrics_require_key:
            check_key(settings, presented_key(request))
        body, content_type = metrics.exposition()
        # Litestar appends the charset to text/* itself.
        return Response(body, media_type=content_type.replace("; charset=utf-8", ""))

    @get("/", include_in_schema=False)
    async def demo_page() -> File:
        return File(
            STATIC_DIR / "index.html", media_type=MediaType.HTML, content_disposition_type="inline"
        )

    app = Litestar(
        route_handlers=[
            demo_page,
            create_static_files_router(
                path="/static", directories=[STATIC_DIR], include_in_schema=False
            ),
            HealthController,
            model_routes(settings),
            prometheus_metrics,
        ],
        dependencies={
            "registry": Provide(lambda: registry, use_cache=True, sync_to_thread=False),
        },
        lifespan=[lifespan],
        exception_handlers=exception_handlers(settings),
        request_max_body_size=settings.max_body_bytes,
        state=State(
            {"images": preparer, "settings": settings, "registry": registry, "workers": board}
        ),
        cors_config=CORSConfig(allow_origins=settings.cors_origins)
        if settings.cors_origins
        else None,
        openapi_config=OpenAPIConfig(
            title="mlp-serve",
            version=SERVER_VERSION,
            description="Dynamic-batching inference for small PyTorch MLPs: KServe v1 and the "
            "Open Inference Protocol v2.",
        ),
        logging_config=None,  # logging is configured once, by `python -m service` (JSON lines)
        debug=False,
    )
    union_answers_as_any_of(app.openapi_schema)
    return app


def serve_app() -> AccessLog:
    """What uvicorn runs (`--factory`): the app from SERVE_* settings, wrapped in the access log."""
    return AccessLog(create_app())
