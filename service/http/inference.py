"""Where an HTTP request meets its model's batcher: run rows, and abandon them if the client
goes away.

Litestar does not cancel a handler when its client disconnects, so a small watcher listens for
`http.disconnect` and cancels the handler; rows whose batch has not started leave the queue.
The watcher starts only once a request has waited `WATCH_AFTER_S`: most answers come sooner,
and a task per request cost more than the rest of the batcher's work for it.
"""

from __future__ import annotations

import asyncio

import numpy as np
from litestar import Request

from service.errors import ClientDisconnected, ModelNotReady
from service.loading import LoadedModel

# A client that leaves sooner costs at most its own rows' compute; latency under overload stays
# well below it (README, Performance), so a busy server starts no watchers.
WATCH_AFTER_S = 0.25


class DisconnectWatch:
    """Cancels `handler` if its client disconnects, listening from `after_s` on."""

    __slots__ = ("handler", "request", "task", "timer")

    def __init__(self, request: Request, handler: asyncio.Task, after_s: float) -> None:
        self.request = request
        self.handler = handler
        self.task: asyncio.Task | None = None
        self.timer = asyncio.get_running_loop().call_later(after_s, self._start)

    def _start(self) -> None:
        self.task = asyncio.ensure_future(self._cancel_on_disconnect())

    async def _cancel_on_disconnect(self) -> None:
        while (await self.request.receive())["type"] != "http.disconnect":
            pass
        self.handler.cancel()

    @property
    def fired(self) -> bool:
        return self.task is not None and self.task.done() and not self.task.cancelled()

    def close(self) -> None:
        self.timer.cancel()
        if self.task is not None:
            self.task.cancel()


async def infer_rows(
    request: Request, model: LoadedModel, rows: np.ndarray, timeout_s: float
) -> np.ndarray:
    """Run `rows` through `model`'s batcher; raise ClientDisconnected if the client leaves."""
    if model.batcher is None:
        raise ModelNotReady(f"model {model.name!r} version {model.version} is not serving")
    handler = asyncio.current_task()
    assert handler is not None
    watch = DisconnectWatch(request, handler, WATCH_AFTER_S)
    try:
        return await model.batcher.infer(rows, timeout_s)
    except asyncio.CancelledError:
        if watch.fired:  # our own cancellation, not a shutdown
            handler.uncancel()
            raise ClientDisconnected("client disconnected") from None
        raise
    finally:
        watch.close()
