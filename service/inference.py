"""Where an HTTP request meets a batcher: run rows, and abandon them if the client goes away.

Litestar does not cancel a handler when its client disconnects, so the handler listens for
`http.disconnect` itself while it waits; rows whose batch has not started leave the queue.
"""

from __future__ import annotations

import asyncio
import contextlib

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
    inference = asyncio.ensure_future(model.batcher.infer(rows, timeout_s))
    disconnect = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait((inference, disconnect), return_when=asyncio.FIRST_COMPLETED)
    finally:
        disconnect.cancel()
    if not inference.done():
        inference.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inference
        raise ClientDisconnected("client disconnected")
    return inference.result()


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
