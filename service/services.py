"""The server's long-lived parts, built once and shared by every transport (HTTP and gRPC),
and the readiness they add up to."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from service.codecs.uploads import ImagePreparer
from service.drain import Drain
from service.errors import ModelNotReady, ServeError, Unavailable
from service.repository import ModelRegistry
from service.settings import Settings
from service.workers import WorkerBoard

SERVER_NAME = "mlp-serve"
SERVER_VERSION = version("mlp-serve")
# Triton's names for the extensions served: binary tensors (HTTP), the top-k classification of
# an output, the repository API, and per-model statistics.
EXTENSIONS = ["binary_tensor_data", "classification", "model_repository", "statistics"]


@dataclass(frozen=True)
class Services:
    settings: Settings
    registry: ModelRegistry
    images: ImagePreparer
    drain: Drain
    workers: WorkerBoard | None


def readiness_problem(services: Services) -> ServeError | None:
    """Why the server is not ready, or None: draining, still loading, a repository that cannot
    be read, or (with several workers) another worker still loading."""
    if services.drain.draining:
        return Unavailable("shutting down: draining in-flight requests", retry_after_s=5)
    registry = services.registry
    if not registry.ready:
        return ModelNotReady("models are still loading")
    if registry.scan_problem is not None:
        return ModelNotReady(registry.scan_problem)
    board = services.workers
    if board is not None and board.usable and (ready := board.ready_count()) < board.workers:
        return ModelNotReady(f"{ready} of {board.workers} worker processes are ready")
    return None
