"""Where an HTTP request meets its model's batcher: run rows, and abandon them if the client
goes away.

Litestar does not cancel a handler when its client disconnects, so a small watcher listens for
`http.disconnect` and cancels the handler; rows whose batch has not started leave the queue.
The watcher starts only once a request has waited `WATCH_AFTER_S`: most answers come sooner,
and a task per request cost more than the rest of the batcher's work for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from service.errors import ClientDisconnected
from service.http.asgi import Connection
from service.loading import LoadedModel
from service.request_record import note_model
from service.services import Services

# A client that leaves sooner costs at most its own rows' compute; latency under overload stays
# well below it (README, Performance), so a busy server starts no watchers.
WATCH_AFTER_S = 0.25
T = TypeVar("T")


class DisconnectWatch:
    """Cancels `handler` if its client disconnects, listening from `after_s` on."""

    __slots__ = ("handler", "request", "task", "timer")

    def __init__(self, request: Connection, handler: asyncio.Task, after_s: float) -> None:
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


class cancel_on_disconnect:  # noqa: N801  (a context manager, like contextlib's)
    """Within the block, a client that disconnects cancels the handler's task, and the block
    raises ClientDisconnected (a class, not @contextmanager: a generator per request costs)."""

    __slots__ = ("watch",)

    def __init__(self, request: Connection) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self.watch = DisconnectWatch(request, handler, WATCH_AFTER_S)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> bool:
        self.watch.close()
        if kind is asyncio.CancelledError and self.watch.fired:  # ours, not a shutdown
            self.watch.handler.uncancel()
            raise ClientDisconnected("client disconnected") from None
        return False


def served_model(server: Services, name: str, version: str | None, endpoint: str) -> LoadedModel:
    """The version a request names (the default when `version` is None), noted in the
    request's record for its log line and metrics under `endpoint`."""
    model = server.registry.get(name, version)
    note_model(endpoint, model.name, model.version)
    return model


async def infer_rows(
    request: Connection, model: LoadedModel, rows: np.ndarray, timeout_s: float
) -> np.ndarray:
    """`model.infer`, abandoned (ClientDisconnected) if the client leaves; a request that
    runs at once on the event loop has no wait to abandon, and no watcher."""
    outputs = model.infer_now(rows)
    if outputs is not None:
        return outputs
    with cancel_on_disconnect(request):
        return await model.infer(rows, timeout_s)


# Above this, a JSON or tensor body is decoded on a worker thread: a maximal body takes a second
# or more to decode (README, Security and limits), and the event loop must keep answering
# health checks and small requests meanwhile. Below it, the hop would cost more than decoding.
OFF_LOOP_BODY_BYTES = 256 * 1024


async def decode_body(decode: Callable[..., T], body: bytes, *args: object) -> T:
    """`decode(body, *args)`, on a worker thread when the body is large."""
    if len(body) <= OFF_LOOP_BODY_BYTES:
        return decode(body, *args)
    return await asyncio.to_thread(decode, body, *args)
