"""KServe v1 / TF-Serving: `POST /v1/models/{name}:predict` (and `:predict-image`), the model
list and each model's status."""

from __future__ import annotations

import asyncio

from litestar import Controller, Request, get, post
from litestar.openapi.spec import Example
from litestar.params import FromPath
from litestar.response import File
from litestar.types import ASGIApp

from modelrepo.layout import CURVES_FILE
from service.codecs import kserve_v1, uploads
from service.codecs.answer import Answer
from service.codecs.schemas import (
    V1ClassResponse,
    V1ImageResponse,
    V1ModelList,
    V1ModelStatus,
    V1PredictRequest,
    V1ValueResponse,
    VersionStats,
)
from service.errors import ModelNotFound
from service.http.asgi import AnswerApp, Connection, header, media_type, query_flag, read_body
from service.http.inference import cancel_on_disconnect, decode_body, infer_rows, served_model
from service.http.routes.openapi import errors, success, with_json_body
from service.http.state import Services, services
from service.loading import LoadedModel
from service.repository import ModelEntry

PREDICT_DOC = with_json_body(
    V1PredictRequest,
    "`:predict`: feature vectors in the model's raw units (JSON), each a list in the card's "
    "feature order or an object keyed by the card's `input.feature_names` in any order (every "
    "name once). `:predict-image` (image models): digit pictures as multipart field `file` "
    "(repeatable) or one raw image body; `?return_input=true` adds the 28x28 the model saw as a "
    "base64 PNG.",
    {"instances": [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]]},
    images=True,
    other_examples={
        "iris-named": Example(
            summary="An iris flower by its feature names",
            value={
                "instances": [
                    {
                        "sepal_length_cm": 5.1,
                        "sepal_width_cm": 3.5,
                        "petal_length_cm": 1.4,
                        "petal_width_cm": 0.2,
                    }
                ]
            },
        )
    },
)
PREDICT_ANSWER = success(
    V1ClassResponse | V1ValueResponse | V1ImageResponse,
    "One prediction per instance or image, in order",
    {
        "model_name": "iris",
        "model_version": "1",
        "predictions": [
            {"label": 0, "class_name": "setosa", "probabilities": [0.99, 0.01, 0.0]},
            {"label": 2, "class_name": "virginica", "probabilities": [0.0, 0.02, 0.98]},
        ],
    },
)
ENDPOINTS = {"predict": "v1/predict", "predict-image": "v1/predict-image"}  # metrics labels
MIN_REMAINING_S = 0.001  # what the batcher gets when decoding used up the request's time


def split_verb(target: str) -> tuple[str, str]:
    """`iris:predict` -> ("iris", "predict"): a path parameter fills a whole segment."""
    name, sep, verb = target.rpartition(":")
    if not sep or not name:
        raise ModelNotFound(f"unknown endpoint {target!r}; use /v1/models/<name>:predict")
    return name, verb


class V1Controller(Controller):
    path = "/v1/models"
    tags = ["KServe v1"]

    @get("/", summary="List models")
    async def list_models(self, request: Request) -> V1ModelList:
        return V1ModelList(models=sorted(services(request).registry.entries))

    @get("/{name:str}", summary="Model status, card and batching counters", responses=errors(404))
    async def model_status(self, request: Request, name: FromPath[str]) -> V1ModelStatus:
        return model_status(services(request).registry.entry(name))

    @get(
        "/{name:str}/versions/{version:str}/curves.png",
        summary="Training curves of a model version (PNG)",
        media_type="image/png",
        responses=errors(404, 503),
    )
    async def curves(self, request: Request, name: FromPath[str], version: FromPath[str]) -> File:
        registry = services(request).registry
        model = registry.get(name, version)
        path = registry.root / model.name / str(model.version) / CURVES_FILE
        if not path.is_file():
            raise ModelNotFound(f"model {name!r} version {version} has no {CURVES_FILE}")
        return File(path, media_type="image/png", content_disposition_type="inline")

    @post(
        ["/{target:str}", "/{name:str}/versions/{target:str}"],
        status_code=200,
        summary="Predict: POST /v1/models/{name}:predict, or .../versions/{v}:predict",
        operation_class=PREDICT_DOC,
        responses=PREDICT_ANSWER,
    )
    async def predict(
        self, request: Request, target: FromPath[str], name: FromPath[str | None] = None
    ) -> ASGIApp:
        if name is None:  # /v1/models/iris:predict
            name, verb = split_verb(target)
            version = None
        else:  # /v1/models/iris/versions/1:predict
            version, verb = split_verb(target)
        if verb not in ENDPOINTS:
            raise ModelNotFound(f"unknown verb {verb!r}; use :predict or :predict-image")
        server = services(request)
        model = served_model(server, name, version, ENDPOINTS[verb])
        if verb == "predict-image":
            return AnswerApp(await predict_images(request, server, model))
        return AnswerApp(await predict_rows(request, server, model))


async def predict_rows(request: Connection, server: Services, model: LoadedModel) -> Answer:
    """JSON instances -> rows -> the model's batcher -> predictions (for this handler and for
    the direct route, `service.http.direct`)."""
    settings = server.settings
    kserve_v1.check_media_type(media_type(request))
    body = await read_body(request, settings.max_body_bytes)
    rows = await decode_body(kserve_v1.decode_rows, body, model.card, settings.max_rows_per_request)
    outputs = await infer_rows(request, model, rows, settings.request_timeout_s)
    return kserve_v1.encode_answer(model.card, outputs)


async def predict_images(request: Request, server: Services, model: LoadedModel) -> Answer:
    """Uploaded digit pictures -> MNIST-style rows (off the loop) -> the same batcher."""
    settings = server.settings
    uploads.check_image_model(model.card)
    with_png = query_flag(request, "return_input")
    boundary = uploads.upload_boundary(header(request, b"content-type"))
    body = await read_body(request, settings.max_body_bytes)
    files = uploads.split_uploads(body, boundary, settings.max_files_per_request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.request_timeout_s  # decoding counts in the request's time
    with cancel_on_disconnect(request):
        prepared = await server.images.prepare(files, with_png, settings.request_timeout_s)
        remaining = max(deadline - loop.time(), MIN_REMAINING_S)
        outputs = await model.infer(uploads.stack_rows(prepared), remaining)
    return uploads.encode_answer(model.card, files, prepared, outputs, settings.not_a_digit_below)


def model_status(entry: ModelEntry) -> V1ModelStatus:
    default = entry.default_version
    served = entry.loaded[default] if default is not None else None
    card = served.card.model_dump(mode="json") if served is not None and served.has_card else None
    stats = {}
    for version, model in entry.loaded.items():
        if model.batcher is not None:
            counters = model.batcher.stats
            stats[str(version)] = VersionStats(
                runtime=model.runtime.name,
                device=model.runtime.device,
                rows_inferred=counters.rows_inferred,
                batches=counters.batches,
                queued_rows=counters.queued_rows,
                max_batch_size=model.batcher.max_batch_size,
                max_queue_delay_ms=model.batcher.max_queue_delay_s * 1e3,
                inline_max_rows=model.batcher.inline_max_rows,
                inline_requests=counters.inline_requests,
                has_card=model.has_card,
            )
    return V1ModelStatus(
        name=entry.name,
        ready=entry.ready,
        versions=[str(v) for v in entry.versions],
        default_version=str(default) if default is not None else None,
        card=card,
        has_card=served.has_card if served is not None else None,
        reason=entry.reason() or None,
        failed_versions={str(v): why for v, why in entry.failed.items()},
        stats=stats,
    )
