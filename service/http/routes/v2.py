"""The Open Inference Protocol v2 (KServe v2 / Triton HTTP) model endpoints: metadata,
readiness and inference, each for the default version and for an explicit one."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.types import ASGIApp

from service.codecs import oip_v2
from service.codecs.answer import Answer
from service.codecs.model_config import model_config_json
from service.codecs.schemas import (
    TensorMetadata,
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
    V2ModelReady,
)
from service.http.asgi import AnswerApp, Connection, header, media_type, read_body
from service.http.inference import decode_body, infer_rows, served_model
from service.http.routes.openapi import errors, success, with_json_body
from service.http.state import Services, services
from service.loading import LoadedModel
from service.repository import ModelRegistry

HEADER_LENGTH_KEY = oip_v2.HEADER_LENGTH.lower().encode()
INFER_ENDPOINT = "v2/infer"  # its metrics label
INFER_DOC = with_json_body(
    V2InferRequest,
    "An OIP inference request. With the binary tensor data extension the body is this JSON "
    f"(its length in the {oip_v2.HEADER_LENGTH} header) followed by the raw tensor bytes.",
    {
        "id": "a1",
        "inputs": [
            {
                "name": "INPUT__0",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [5.1, 3.5, 1.4, 0.2, 6.9, 3.1, 5.4, 2.1],
            }
        ],
    },
)
INFER_ANSWER = success(
    V2InferResponse,
    "The output tensor (JSON data, or binary after the JSON header when asked)",
    {
        "model_name": "iris",
        "model_version": "1",
        "id": "a1",
        "outputs": [
            {
                "name": "OUTPUT__0",
                "datatype": "FP32",
                "shape": [2, 3],
                "data": [0.99, 0.01, 0.0, 0.0, 0.02, 0.98],
            }
        ],
    },
)


class V2StatisticsController(Controller):
    """Triton's statistics extension for every model (`/v2/models/stats`)."""

    path = "/v2/models/stats"
    tags = ["Open Inference Protocol v2"]

    @get("/", summary="Statistics of every model version (Triton's statistics extension)")
    async def every_model(self, request: Request) -> dict[str, Any]:
        return {"model_stats": services(request).registry.statistics()}


class V2ModelController(Controller):
    path = "/v2/models/{name:str}"
    tags = ["Open Inference Protocol v2"]

    @get(["/", "/versions/{version:str}"], summary="Model metadata", responses=errors(404, 503))
    async def metadata(
        self, request: Request, name: FromPath[str], version: FromPath[str | None] = None
    ) -> V2ModelMetadata:
        return model_metadata(services(request).registry, name, version)

    @get(
        ["/config", "/versions/{version:str}/config"],
        summary="Model configuration (Triton's ModelConfig as JSON)",
        responses=errors(404, 503),
    )
    async def config(
        self, request: Request, name: FromPath[str], version: FromPath[str | None] = None
    ) -> dict[str, Any]:
        return model_config_json(services(request).registry.get(name, version).config())

    @get(
        ["/stats", "/versions/{version:str}/stats"],
        summary="Statistics of the model's versions (Triton's statistics extension)",
        responses=errors(404, 503),
    )
    async def stats(
        self, request: Request, name: FromPath[str], version: FromPath[str | None] = None
    ) -> dict[str, Any]:
        return {"model_stats": services(request).registry.statistics(name, version)}

    @get(
        ["/ready", "/versions/{version:str}/ready"],
        summary="Model readiness",
        responses=errors(404, 503),
    )
    async def ready(
        self, request: Request, name: FromPath[str], version: FromPath[str | None] = None
    ) -> V2ModelReady:
        services(request).registry.get(name, version)  # 404 unknown, 503 (with why) not ready
        return V2ModelReady(name=name, ready=True)

    @post(
        ["/infer", "/versions/{version:str}/infer"],
        status_code=200,
        summary="Inference",
        operation_class=INFER_DOC,
        responses=INFER_ANSWER,
    )
    async def infer(
        self, request: Request, name: FromPath[str], version: FromPath[str | None] = None
    ) -> ASGIApp:
        """Decode (JSON or binary tensors), run through the batcher, encode as asked."""
        server = services(request)
        model = served_model(server, name, version, INFER_ENDPOINT)
        return AnswerApp(await infer_tensors(request, server, model))


async def infer_tensors(request: Connection, server: Services, model: LoadedModel) -> Answer:
    """An OIP request's tensors -> the model's batcher -> its outputs; the body comes straight
    from ASGI, as for v1 (for this handler and for the direct route, `service.http.direct`)."""
    settings = server.settings
    header_length = header(request, HEADER_LENGTH_KEY)
    oip_v2.check_media_type(media_type(request), binary=header_length is not None)
    body = await read_body(request, settings.max_body_bytes)
    payload = await decode_body(
        oip_v2.decode_request,
        body,
        header_length,
        model.card,
        settings.max_rows_per_request,
        settings.request_timeout_s,
    )
    outputs = await infer_rows(request, model, payload.rows, payload.timeout_s)
    return oip_v2.encode_answer(model.card, payload, outputs)


def model_metadata(registry: ModelRegistry, name: str, version: str | None) -> V2ModelMetadata:
    model = registry.get(name, version)
    card = model.card
    return V2ModelMetadata(
        name=name,
        versions=[str(v) for v in sorted(registry.entry(name).loaded)],
        platform=model.runtime.platform,
        inputs=[TensorMetadata(card.input.name, card.input.datatype, card.input.shape)],
        outputs=[TensorMetadata(card.output.name, card.output.datatype, card.output.shape)],
        parameters=None if model.has_card else {"has_card": False},
    )
