"""Triton's `inference.GRPCInferenceService`, as tritonclient speaks it: the same registry,
codecs and batchers as HTTP, the same errors (as Triton's status codes) and the same API key
(as metadata). Each RPC is counted and logged by `rpc`, the gRPC side's request hook.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc

from service import metrics, statistics
from service.api_key import check_key, presented_key
from service.codecs import triton_grpc
from service.errors import ModelNotReady, ServeError
from service.grpc.status import status_of
from service.in_flight import REQUESTS
from service.logs import BatchedLines, json_line
from service.request_record import RequestRecord, note_model, open_record
from service.services import (
    EXTENSIONS,
    SERVER_NAME,
    SERVER_VERSION,
    Services,
    readiness_problem,
)

log = logging.getLogger("service.access")
SERVICE = "inference.GRPCInferenceService"
Request = TypeVar("Request")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]
_lines = BatchedLines()


def rpc(guarded: bool) -> Callable[[Handler], Handler]:
    """The gRPC request hook: the API key where the HTTP twin needs one, errors as status
    codes, and one access-log line and the request metrics per call."""

    def decorate(method: Handler) -> Handler:
        name = f"/{SERVICE}/{method.__name__}"

        @functools.wraps(method)
        async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            began, record, status = time.perf_counter(), open_record(), 200
            REQUESTS.requests += 1
            try:
                if guarded and self.services.settings.api_key is not None:
                    check_key(self.services.settings, metadata_key(context))
                return await method(self, request, context)
            except ServeError as error:
                status = error.status_code
                await context.abort(status_of(error), str(error))
            except asyncio.CancelledError:  # the client cancelled, or the server stops
                status = 499
                raise
            except Exception:
                if context.code() is not None:  # an abort already under way
                    raise
                status = 500
                log.exception("unhandled error in %s", name)
                await context.abort(
                    grpc.StatusCode.INTERNAL, "internal server error; the incident was logged"
                )
            finally:
                REQUESTS.requests -= 1
                observe(record, name, status, time.perf_counter() - began)

        return handler

    return decorate


def metadata_key(context: grpc.aio.ServicerContext) -> str | None:
    metadata = {key.lower(): value for key, value in context.invocation_metadata() or ()}
    return presented_key(metadata.get)


def observe(record: RequestRecord, name: str, status: int, elapsed_s: float) -> None:
    if record.endpoint and record.model and record.version is not None:
        metrics.request_done(record.endpoint, record.model, record.version, status, elapsed_s)
        statistics.request_done(record.model, record.version, status, elapsed_s)
    if not log.isEnabledFor(logging.INFO):
        return
    line = json_line("info", log.name, "request", time.time())
    if record.model is not None:
        line["model"], line["version"] = record.model, record.version
    if record.batch_size is not None:
        line["batch_size"] = record.batch_size
    line |= {"protocol": "grpc", "method": "POST", "path": name, "status": status}
    line["latency_ms"] = round(elapsed_s * 1e3, 3)
    _lines.write(line)


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, services: Services) -> None:
        self.services = services

    @rpc(guarded=False)
    async def ServerLive(self, request: Any, context: Any) -> service_pb2.ServerLiveResponse:
        return service_pb2.ServerLiveResponse(live=True)

    @rpc(guarded=False)
    async def ServerReady(self, request: Any, context: Any) -> service_pb2.ServerReadyResponse:
        return service_pb2.ServerReadyResponse(ready=readiness_problem(self.services) is None)

    @rpc(guarded=True)
    async def ModelReady(
        self, request: service_pb2.ModelReadyRequest, context: Any
    ) -> service_pb2.ModelReadyResponse:
        try:
            self.services.registry.get(request.name, request.version or None)
        except ModelNotReady:
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=True)

    @rpc(guarded=False)
    async def ServerMetadata(
        self, request: Any, context: Any
    ) -> service_pb2.ServerMetadataResponse:
        return service_pb2.ServerMetadataResponse(
            name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS
        )

    @rpc(guarded=True)
    async def ModelMetadata(
        self, request: service_pb2.ModelMetadataRequest, context: Any
    ) -> service_pb2.ModelMetadataResponse:
        registry = self.services.registry
        model = registry.get(request.name, request.version or None)
        card = model.card
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=request.name,
            versions=[str(v) for v in sorted(registry.entry(request.name).loaded)],
            platform=model.runtime.platform,
            inputs=[
                tensor(name=card.input.name, datatype=card.input.datatype, shape=card.input.shape)
            ],
            outputs=[
                tensor(
                    name=card.output.name, datatype=card.output.datatype, shape=card.output.shape
                )
            ],
        )

    @rpc(guarded=True)
    async def ModelConfig(
        self, request: service_pb2.ModelConfigRequest, context: Any
    ) -> service_pb2.ModelConfigResponse:
        model = self.services.registry.get(request.name, request.version or None)
        return service_pb2.ModelConfigResponse(config=model.config())

    @rpc(guarded=True)
    async def ModelInfer(
        self, request: service_pb2.ModelInferRequest, context: Any
    ) -> service_pb2.ModelInferResponse:
        """Decode (raw or typed contents), run through the batcher, answer raw contents. A
        client that cancels cancels this task: its rows leave the queue if not yet started."""
        settings = self.services.settings
        model = self.services.registry.get(request.model_name, request.model_version or None)
        note_model("grpc/infer", model.name, model.version)
        payload = triton_grpc.decode_request(
            request, model.card, settings.max_rows_per_request, settings.request_timeout_s
        )
        outputs = await model.infer(payload.rows, payload.timeout_s)
        return triton_grpc.encode_response(model.card, request, payload, outputs)

    @rpc(guarded=True)
    async def ModelStatistics(
        self, request: service_pb2.ModelStatisticsRequest, context: Any
    ) -> service_pb2.ModelStatisticsResponse:
        found = self.services.registry.statistics(request.name, request.version or None)
        return json_format.ParseDict({"model_stats": found}, service_pb2.ModelStatisticsResponse())

    async def ModelStreamInfer(self, request_iterator: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "ModelStreamInfer is not served: these models answer one request with one "
            "response; use ModelInfer",
        )

    @rpc(guarded=True)
    async def RepositoryIndex(
        self, request: service_pb2.RepositoryIndexRequest, context: Any
    ) -> service_pb2.RepositoryIndexResponse:
        index = service_pb2.RepositoryIndexResponse.ModelIndex
        rows = self.services.registry.index(ready_only=request.ready)
        return service_pb2.RepositoryIndexResponse(
            models=[
                index(name=r.name, version=r.version, state=r.state, reason=r.reason) for r in rows
            ]
        )

    @rpc(guarded=True)
    async def RepositoryModelLoad(
        self, request: service_pb2.RepositoryModelLoadRequest, context: Any
    ) -> service_pb2.RepositoryModelLoadResponse:
        (await self.services.registry.load(request.model_name)).raise_if_failed()
        return service_pb2.RepositoryModelLoadResponse()

    @rpc(guarded=True)
    async def RepositoryModelUnload(
        self, request: service_pb2.RepositoryModelUnloadRequest, context: Any
    ) -> service_pb2.RepositoryModelUnloadResponse:
        await self.services.registry.unload(request.model_name)
        return service_pb2.RepositoryModelUnloadResponse()
