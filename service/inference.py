"""Where an HTTP request meets a batcher: run rows, and abandon them if the client goes away.

Litestar does not cancel a handler when its client disconnects, so a small watcher listens for
`http.disconnect` and cancels the handler; rows whose batch has not started leave the queue.
"""

from __future__ import annotations

import asyncio

import numpy as np
from litestar import Request

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
        return await model.batcher.infer(rows, timeout_s)
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():  # our own cancellation, not a shutdown
            handler.uncancel()
            raise ClientDisconnected("client disconnected") from None
        raise
    finally:
        watcher.cancel()


async def _cancel_on_disconnect(request: Request, handler: asyncio.Task) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    handler.cancel()
