"""KServe v1 / TF-Serving: `POST /v1/models/{name}:predict`, model list and status."""

from __future__ import annotations

import numpy as np
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import File
from litestar.types import ASGIApp

from service.cards import CURVES_FILE
from service.errors import ModelNotFound, UnsupportedMediaType
from service.inference import infer_rows, tracked
from service.repository import LoadedModel, ModelEntry, ModelRegistry
from service.routes.asgi import JsonAnswer, media_type, read_body
from service.routes.openapi import errors, success, with_json_body
from service.schemas import (
    ImagePrediction,
    V1ImageResponse,
    V1ModelList,
    V1ModelStatus,
    V1PredictRequest,
    V1PredictResponse,
    VersionStats,
)
from service.settings import Settings
from service.tensors import decode_v1_instances, v1_predictions
from service.uploads import ImagePreparer, check_image_model, query_flag, read_uploads

PREDICT_DOC = with_json_body(
    V1PredictRequest,
    "`:predict`: feature vectors in the model's raw units (JSON). `:predict-image` (image "
    "models): digit pictures as multipart field `file` (repeatable) or one raw image body; "
    "`?return_input=true` adds the 28x28 the model saw as a base64 PNG.",
    {"instances": [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]]},
    images=True,
)
PREDICT_ANSWER = success(
    V1PredictResponse | V1ImageResponse,
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


def split_verb(target: str) -> tuple[str, str]:
    """`iris:predict` -> ("iris", "predict"): a path parameter fills a whole segment."""
    name, sep, verb = target.rpartition(":")
    if not sep or not name:
        raise ModelNotFound(f"unknown endpoint {target!r}; use /v1/models/<name>:predict")
    return name, verb


def require_json(request: Request) -> None:
    media = media_type(request)
    if media and media != "application/json":
        raise UnsupportedMediaType(
            f"content type {media!r} is not supported here; send application/json"
            + (
                " (images go to :predict-image)"
                if media.startswith(("image/", "multipart/"))
                else ""
            )
        )


class V1Controller(Controller):
    path = "/v1/models"
    tags = ["KServe v1"]

    @get("/", summary="List models")
    async def list_models(self, registry: NamedDependency[ModelRegistry]) -> V1ModelList:
        return V1ModelList(models=sorted(registry.entries))

    @get("/{name:str}", summary="Model status, card and batching counters", responses=errors(404))
    async def model_status(
        self, name: FromPath[str], registry: NamedDependency[ModelRegistry]
    ) -> V1ModelStatus:
        return model_status(registry.entry(name))

    @get(
        "/{name:str}/versions/{version:str}/curves.png",
        summary="Training curves of a model version (PNG)",
        media_type="image/png",
        responses=errors(404, 503),
    )
    async def curves(
        self, name: FromPath[str], version: FromPath[str], registry: NamedDependency[ModelRegistry]
    ) -> File:
        model = registry.get(name, version)
        path = registry.root / model.name / str(model.version) / CURVES_FILE
        if not path.is_file():
            raise ModelNotFound(f"model {name!r} version {version} has no {CURVES_FILE}")
        return File(path, media_type="image/png", content_disposition_type="inline")

    @post(
        "/{target:str}",
        status_code=200,
        summary="Predict (POST /v1/models/{name}:predict)",
        operation_class=PREDICT_DOC,
        responses=PREDICT_ANSWER,
    )
    async def predict(self, request: Request, target: FromPath[str]) -> ASGIApp:
        name, verb = split_verb(target)
        return await serve_predict(request, name, None, verb)

    @post(
        "/{name:str}/versions/{target:str}",
        status_code=200,
        summary="Predict with a version (POST /v1/models/{name}/versions/{v}:predict)",
        operation_class=PREDICT_DOC,
        responses=PREDICT_ANSWER,
    )
    async def predict_version(
        self, request: Request, name: FromPath[str], target: FromPath[str]
    ) -> ASGIApp:
        version, verb = split_verb(target)
        return await serve_predict(request, name, version, verb)


async def serve_predict(request: Request, name: str, version: str | None, verb: str) -> JsonAnswer:
    """The predict handlers take the registry from the app's state, not as a dependency:
    Litestar's dependency resolution was 4% of an iris prediction."""
    if verb not in ("predict", "predict-image"):
        raise ModelNotFound(f"unknown verb {verb!r}; use :predict or :predict-image")
    registry: ModelRegistry = request.app.state.registry
    model = registry.get(name, version)
    with tracked(request, ENDPOINTS[verb], model):
        if verb == "predict-image":
            return JsonAnswer(await predict_images(request, registry.settings, model))
        return JsonAnswer(await predict_rows(request, registry.settings, model))


async def predict_rows(
    request: Request, settings: Settings, model: LoadedModel
) -> V1PredictResponse:
    require_json(request)
    body = await read_body(request, settings.max_body_bytes)
    rows = decode_v1_instances(body, model.card, settings.max_rows_per_request)
    outputs = await infer_rows(request, model, rows, settings.request_timeout_s)
    return V1PredictResponse(
        model_name=model.name,
        model_version=str(model.version),
        predictions=v1_predictions(model.card, outputs),
    )


async def predict_images(
    request: Request, settings: Settings, model: LoadedModel
) -> V1ImageResponse:
    """Uploaded digit pictures -> MNIST-style rows (off the loop) -> the same batcher."""
    check_image_model(model.card)
    with_png = query_flag(request, "return_input")
    uploads = await read_uploads(request, settings.max_files_per_request, settings.max_body_bytes)
    preparer: ImagePreparer = request.app.state.images
    prepared = await preparer.prepare(uploads, with_png)
    rows = prepared[0].row[None] if len(prepared) == 1 else np.stack([i.row for i in prepared])
    outputs = await infer_rows(request, model, rows, settings.request_timeout_s)
    predictions = [
        ImagePrediction(
            filename=upload.filename,
            label=prediction.label,  # type: ignore[arg-type]  # image models are classifiers
            class_name=prediction.class_name,
            probabilities=prediction.probabilities,  # type: ignore[arg-type]
            input_png=image.input_png,
        )
        for upload, image, prediction in zip(
            uploads, prepared, v1_predictions(model.card, outputs), strict=True
        )
    ]
    return V1ImageResponse(model.name, str(model.version), predictions)


def model_status(entry: ModelEntry) -> V1ModelStatus:
    default = entry.default_version
    card = entry.loaded[default].card.model_dump(mode="json") if default is not None else None
    stats = {}
    for version, model in entry.loaded.items():
        if model.batcher is not None:
            counters = model.batcher.stats
            stats[str(version)] = VersionStats(
                rows_inferred=counters.rows_inferred,
                batches=counters.batches,
                queued_rows=counters.queued_rows,
                max_batch_size=model.batcher.max_batch_size,
                max_queue_delay_ms=model.batcher.max_queue_delay_s * 1e3,
            )
    return V1ModelStatus(
        name=entry.name,
        ready=entry.ready,
        versions=[str(v) for v in entry.versions],
        default_version=str(default) if default is not None else None,
        card=card,
        reason=entry.reason() or None,
        failed_versions={str(v): why for v, why in entry.failed.items()},
        stats=stats,
    )
