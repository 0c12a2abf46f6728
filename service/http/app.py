"""`create_app(settings)`: the Litestar application over the service's parts, and its lifespan."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from service import metrics
from service.codecs.uploads import ImagePreparer
from service.drain import Drain
from service.grpc.server import start_grpc
from service.http.access_log import AccessLog
from service.http.auth import require_api_key
from service.http.direct import ServeApp
from service.http.errors import exception_handlers
from service.http.head import HeadAsGet
from service.http.routes.demo import demo_page, static_files
from service.http.routes.health import HealthController
from service.http.routes.metrics import prometheus_metrics
from service.http.routes.openapi import union_answers_as_any_of
from service.http.routes.repository import RepositoryController
from service.http.routes.v1 import V1Controller
from service.http.routes.v2 import V2ModelController, V2StatisticsController
from service.http.state import STATE_KEY, app_services
from service.repository import ModelRegistry
from service.services import SERVER_VERSION, Services
from service.settings import Settings
from service.workers import LOADING, READY, worker_board


def create_app(settings: Settings | None = None) -> ServeApp:
    """The app; with no argument (uvicorn --factory, --workers N) settings come from SERVE_*.
    The inference routes are answered before Litestar's router (`service.http.direct`)."""
    settings = settings or Settings()
    parts = Services(
        settings=settings,
        registry=ModelRegistry(settings),
        images=ImagePreparer(
            settings.image_workers, settings.max_image_pixels, settings.max_request_pixels
        ),
        drain=Drain(),
        workers=worker_board(settings.workers),
    )
    app = ServeApp(
        route_handlers=[
            demo_page,
            static_files(),
            HealthController,
            model_routes(settings),
            prometheus_metrics,
        ],
        lifespan=[serve_lifespan],
        exception_handlers=exception_handlers(settings.max_body_bytes),
        request_max_body_size=settings.max_body_bytes,
        state=State({STATE_KEY: parts}),
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
    """What uvicorn runs (`--factory`): the app from SERVE_* settings, HEAD served as GET, all
    of it inside the access log."""
    return AccessLog(HeadAsGet(create_app()))


def model_routes(settings: Settings) -> Router:
    """The model and repository endpoints, behind the API key when one is set (and no guard
    at all otherwise: a guard costs every request a handler copy)."""
    return Router(
        path="/",
        route_handlers=[
            V1Controller,
            V2StatisticsController,
            V2ModelController,
            RepositoryController,
        ],
        guards=[require_api_key] if settings.api_key is not None else [],
    )


@asynccontextmanager
async def serve_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Load the models in the background (liveness answers at once, readiness once all are
    warm), poll the repository if asked, and on shutdown drain every batcher."""
    parts = app_services(app)
    parts.drain.install(parts.settings.drain_delay_s)
    if parts.workers is not None:
        parts.workers.post(LOADING)
    tasks = [asyncio.create_task(load_models(parts), name="load-models")]
    if parts.settings.poll_interval_s > 0:
        tasks.append(asyncio.create_task(poll_repository(parts), name="poll-repository"))
    grpc_server = await start_grpc(parts) if parts.settings.grpc_port else None
    try:
        yield
    finally:
        if grpc_server is not None:  # in-flight calls finish while the batchers still run
            await grpc_server.stop(parts.settings.drain_timeout_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await parts.registry.stop()
        parts.images.close()
        if parts.workers is not None:
            parts.workers.leave()
        metrics.worker_exited(os.getpid())


async def load_models(parts: Services) -> None:
    await parts.registry.start()
    freeze_heap()
    if parts.workers is not None:
        parts.workers.post(READY)


async def poll_repository(parts: Services) -> None:
    await parts.registry.loaded.wait()
    await parts.registry.poll_forever(parts.settings.poll_interval_s)


def freeze_heap() -> None:
    """Keep the garbage collector off the long-lived heap (torch, models, routes).

    A full collection walks every object torch and the app created at start-up: under load that
    stalled the event loop for many milliseconds, and tail latency with it. Young objects are still
    collected; the larger first threshold cuts collections per request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 1_000)
