"""The gRPC server: built in the HTTP app's lifespan, in the same event loop, on
`SERVE_GRPC_PORT`; stopped before the batchers, so that in-flight calls finish.

With `--workers N` every worker binds the same port with SO_REUSEPORT and the kernel spreads
connections over them, as it does for HTTP. A single worker binds without it (gRPC's default
would let a second server on the same port share its clients unnoticed): a port in use stops
the server at start.
"""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2_grpc

from service.grpc.inference import SERVICE, InferenceService
from service.services import Services, readiness_problem

log = logging.getLogger(__name__)
MESSAGE_OVERHEAD = 64 * 1024  # a message's framing and tensor metadata beside its contents


class Health(health_pb2_grpc.HealthServicer):
    """gRPC's standard health service: SERVING when the server is ready (for the whole server
    and for the inference service by name), NOT_SERVING while loading or draining."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in ("", SERVICE):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        serving = readiness_problem(self.services) is None
        status = health_pb2.HealthCheckResponse
        return status(status=status.SERVING if serving else status.NOT_SERVING)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Watch is not served; poll Check")


async def start_grpc(services: Services) -> grpc.aio.Server:
    """Listening on SERVE_HOST:SERVE_GRPC_PORT; messages bounded like HTTP bodies."""
    settings = services.settings
    limit = settings.max_body_bytes + MESSAGE_OVERHEAD
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ]
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(services), server)
    health_pb2_grpc.add_HealthServicer_to_server(Health(services), server)
    address = f"{settings.host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    await server.start()
    log.info(
        "gRPC running on %s:%d",
        settings.host,
        port,
        extra={"fields": {"host": settings.host, "port": port}},
    )
    return server
