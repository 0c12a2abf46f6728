"""The Open Inference Protocol v2 (KServe v2 / Triton HTTP), with the binary tensor extension."""

from __future__ import annotations

import msgspec
import numpy as np
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.types import ASGIApp

from service import drain
from service.errors import InvalidInput, ModelNotReady, Unavailable, UnsupportedMediaType
from service.inference import infer_rows, tracked
from service.repository import LoadedModel, ModelRegistry
from service.routes.asgi import JsonAnswer, header, media_type, read_body
from service.routes.openapi import errors, success, with_json_body
from service.schemas import (
    TensorMetadata,
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
    V2ModelReady,
    V2ResponseTensor,
    V2ServerMetadata,
)
from service.settings import Settings
from service.tensors import V2Payload, decode_v2_request
from service.workers import WorkerBoard

SERVER_NAME = "mlp-serve"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "pytorch_libtorch"
HEADER_LENGTH = "Inference-Header-Content-Length"
HEADER_LENGTH_KEY = HEADER_LENGTH.lower().encode()
INFER_DOC = with_json_body(
    V2InferRequest,
    "An OIP inference request. With the binary tensor data extension the body is this JSON "
    f"(its length in the {HEADER_LENGTH} header) followed by the raw tensor bytes.",
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
    async def ready(
        self, state: State, registry: NamedDependency[ModelRegistry]
    ) -> dict[str, bool]:
        if drain.draining():
            raise Unavailable("shutting down: draining in-flight requests", retry_after_s=5)
        if not registry.ready:
            raise ModelNotReady("models are still loading")
        board: WorkerBoard | None = state.workers
        if board is not None and (ready := board.ready_count()) < board.workers:
            raise ModelNotReady(f"{ready} of {board.workers} worker processes are ready")
        return {"ready": True}


class V2ModelController(Controller):
    """Each endpoint twice: for the default version and for an explicit one."""

    path = "/v2/models/{name:str}"
    tags = ["Open Inference Protocol v2"]

    @get("/", summary="Model metadata", responses=errors(404, 503))
    async def metadata(
        self, name: FromPath[str], registry: NamedDependency[ModelRegistry]
    ) -> V2ModelMetadata:
        return model_metadata(registry, name, None)

    @get("/versions/{version:str}", summary="Model version metadata", responses=errors(404, 503))
    async def version_metadata(
        self, name: FromPath[str], version: FromPath[str], registry: NamedDependency[ModelRegistry]
    ) -> V2ModelMetadata:
        return model_metadata(registry, name, version)

    @get("/ready", summary="Model readiness", responses=errors(404, 503))
    async def ready(
        self, name: FromPath[str], registry: NamedDependency[ModelRegistry]
    ) -> V2ModelReady:
        registry.get(name)  # 404 unknown, 503 (with the reason) not ready
        return V2ModelReady(name=name, ready=True)

    @get(
        "/versions/{version:str}/ready",
        summary="Model version readiness",
        responses=errors(404, 503),
    )
    async def version_ready(
        self, name: FromPath[str], version: FromPath[str], registry: NamedDependency[ModelRegistry]
    ) -> V2ModelReady:
        registry.get(name, version)
        return V2ModelReady(name=name, ready=True)

    @post(
        "/infer",
        status_code=200,
        summary="Inference",
        operation_class=INFER_DOC,
        responses=INFER_ANSWER,
    )
    async def infer(self, request: Request, name: FromPath[str]) -> ASGIApp:
        return await infer(request, name, None)

    @post(
        "/versions/{version:str}/infer",
        status_code=200,
        summary="Inference on a version",
        operation_class=INFER_DOC,
        responses=INFER_ANSWER,
    )
    async def version_infer(
        self, request: Request, name: FromPath[str], version: FromPath[str]
    ) -> ASGIApp:
        return await infer(request, name, version)


def model_metadata(registry: ModelRegistry, name: str, version: str | None) -> V2ModelMetadata:
    card = registry.get(name, version).card
    return V2ModelMetadata(
        name=name,
        versions=[str(v) for v in sorted(registry.entry(name).loaded)],
        platform=PLATFORM,
        inputs=[TensorMetadata(card.input.name, card.input.datatype, card.input.shape)],
        outputs=[TensorMetadata(card.output.name, card.output.datatype, card.output.shape)],
    )


async def infer(request: Request, name: str, version: str | None) -> JsonAnswer:
    """Decode (JSON or binary tensors), run through the batcher, encode as the client asked.

    The registry comes from the app's state and the body straight from ASGI, as for v1."""
    registry: ModelRegistry = request.app.state.registry
    settings = registry.settings
    model = registry.get(name, version)
    with tracked(request, "v2/infer", model):
        header_length = header(request, HEADER_LENGTH_KEY)
        require_inference_media(request, binary=header_length is not None)
        body = await read_body(request, settings.max_body_bytes)
        payload = decode_v2_request(body, header_length, model.card, settings.max_rows_per_request)
        timeout_s = request_timeout(payload, settings)
        outputs = await infer_rows(request, model, payload.rows, timeout_s)
        return encode_response(model, payload, outputs)


def require_inference_media(request: Request, binary: bool) -> None:
    """No Content-Type is JSON (tritonclient sends none); binary framing may say octet-stream."""
    media = media_type(request)
    allowed = {"", "application/json"} | ({"application/octet-stream"} if binary else set())
    if media not in allowed:
        raise UnsupportedMediaType(
            f"content type {media!r} is not supported; send "
            f"application/json (or the binary tensor data extension)"
        )


def request_timeout(payload: V2Payload, settings: Settings) -> float:
    """The `timeout` parameter (microseconds, as in Triton), capped by the server's own."""
    timeout_us = payload.request.parameters.get("timeout")
    if timeout_us is None:
        return settings.request_timeout_s
    if not isinstance(timeout_us, int) or isinstance(timeout_us, bool) or timeout_us <= 0:
        raise InvalidInput("parameter 'timeout' must be a positive integer of microseconds")
    return min(settings.request_timeout_s, timeout_us / 1e6)


def encode_response(model: LoadedModel, payload: V2Payload, outputs: np.ndarray) -> JsonAnswer:
    spec = model.card.output
    shape = list(outputs.shape)
    if payload.binary_output:
        raw = outputs.astype("<f4", copy=False).tobytes()
        tensor = V2ResponseTensor(
            name=spec.name,
            datatype=spec.datatype,
            shape=shape,
            parameters={"binary_data_size": len(raw)},
        )
    else:
        raw = b""
        tensor = V2ResponseTensor(
            name=spec.name, datatype=spec.datatype, shape=shape, data=outputs.reshape(-1).tolist()
        )
    answer = V2InferResponse(
        model_name=model.name,
        model_version=str(model.version),
        outputs=[tensor],
        id=payload.request.id,
    )
    if not raw:
        return JsonAnswer(answer)
    header = msgspec.json.encode(answer)
    return JsonAnswer(
        header + raw,
        media_type=b"application/octet-stream",
        headers=[(HEADER_LENGTH_KEY, str(len(header)).encode())],
    )
