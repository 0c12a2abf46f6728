"""Where an HTTP request meets a batcher: run rows, and abandon them if the client goes away.

Litestar does not cancel a handler when its client disconnects, so a small watcher listens for
`http.disconnect` and cancels the handler; rows whose batch has not started leave the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from litestar import Request

from service import metrics
from service.access_log import ACCESS_FIELDS
from service.errors import ModelNotReady, ServeError
from service.repository import LoadedModel


class ClientDisconnected(ServeError):
    """The client went away before its answer was ready (no one is left to see this)."""

    status_code = 499


async def infer_rows(
    request: Request, model: LoadedModel, rows: np.ndarray, timeout_s: float
) -> np.ndarray:
    """Run `rows` through `model`'s batcher; raise ClientDisconnected if the client leaves."""
    if model.batcher is None:
        raise ModelNotReady(f"model {model.name!r} version {model.version} is not serving")
    handler = asyncio.current_task()
    assert handler is not None
    watcher = asyncio.ensure_future(_cancel_on_disconnect(request, handler))
    try:
        outputs, batch_rows = await model.batcher.infer_batched(rows, timeout_s)
        access = request.scope.get(ACCESS_FIELDS)
        if access is not None:
            access["batch_size"] = batch_rows
        return outputs
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():  # our own cancellation, not a shutdown
            handler.uncancel()
            raise ClientDisconnected("client disconnected") from None
        raise
    finally:
        watcher.cancel()


@contextmanager
def tracked(request: Request, endpoint: str, model: LoadedModel) -> Iterator[None]:
    """Count and time one inference request, and name its model in the access log."""
    access = request.scope.get(ACCESS_FIELDS)
    if access is not None:
        access["model"] = model.name
        access["version"] = model.version
    with metrics.observe_request(endpoint, model.name, model.version):
        yield


async def _cancel_on_disconnect(request: Request, handler: asyncio.Task) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    handler.cancel()
