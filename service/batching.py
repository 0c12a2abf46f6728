"""Dynamic batching: coalesce concurrent requests into one forward pass. Nothing about HTTP here.

The shape is Ray Serve's batching module: a queue of (rows, future) pairs, a loop that waits for
the first one, gathers until the batch is full or the oldest has waited `max_queue_delay`
(Triton's semantics), runs the batch once on the model's own worker thread, and resolves each
future with its slice of the output. When a batch raises, its requests are retried one by one so
that only the request that really fails sees the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.errors import InferenceFailed, Overloaded, TimedOut, Unavailable

log = logging.getLogger(__name__)

BatchFunction = Callable[[Sequence[np.ndarray]], np.ndarray]
"""Runs one forward pass over the concatenation of row blocks; returns one output row per row."""


class BatchObserver(Protocol):
    """Receives what metrics and the access log need.

    `batch_done` runs on the worker thread, once per forward pass; `request_served` in the
    caller's own task, once its rows are answered, with the size of the (largest) forward pass
    they went through.
    """

    def batch_done(self, rows: int, compute_s: float, waits_s: list[float]) -> None: ...

    def queue_changed(self, depth: int) -> None: ...

    def request_served(self, batch_rows: int) -> None: ...


class Observers:
    """Several observers as the one a batcher calls."""

    def __init__(self, *observers: BatchObserver) -> None:
        self.observers = observers

    def batch_done(self, rows: int, compute_s: float, waits_s: list[float]) -> None:
        for observer in self.observers:
            observer.batch_done(rows, compute_s, waits_s)

    def queue_changed(self, depth: int) -> None:
        for observer in self.observers:
            observer.queue_changed(depth)

    def request_served(self, batch_rows: int) -> None:
        for observer in self.observers:
            observer.request_served(batch_rows)


class _Pending:
    """One queue entry: a block of rows and the future its outputs resolve."""

    __slots__ = ("batch_rows", "enqueued_at", "future", "queued_at", "rows", "started", "withdrawn")

    def __init__(
        self, rows: np.ndarray, future: asyncio.Future[np.ndarray] | None, now: float
    ) -> None:
        self.rows = rows
        self.future = future
        self.enqueued_at = now  # loop time, for the queue delay
        self.queued_at = time.perf_counter()  # for the queue-time metric
        self.batch_rows = 0  # size of the forward pass that served it
        self.started = False
        self.withdrawn = False


@dataclass
class BatcherStats:
    """Monotonic counters; `rows_inferred / batches` is the mean batch size."""

    rows_inferred: int = 0
    batches: int = 0
    failed_batches: int = 0
    queued_rows: int = 0
    inline_requests: int = 0  # run on the event loop, alone (a batch of their own each)


class DynamicBatcher:
    def __init__(
        self,
        run_batch: BatchFunction,
        *,
        name: str,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
        inline_max_rows: int = 0,
        observer: BatchObserver | None = None,
    ) -> None:
        self.name = name
        self.inline_max_rows = inline_max_rows
        self.observer = observer
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self.stats = BatcherStats()
        self._run_batch = run_batch
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{name}")
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self._busy = False  # a batch is on the worker thread

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._serve(), name=f"batcher-{self.name}")

    async def stop(self, timeout_s: float | None = None) -> None:
        """Refuse new requests, finish the queued and in-flight ones, then stop the worker.

        Whatever is still queued after `timeout_s` is answered 503.
        """
        self._closing = True
        self._arrived.set()
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), timeout_s)
            except TimeoutError:
                self._loop_task.cancel()
                await asyncio.gather(self._loop_task, return_exceptions=True)
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(self._unavailable())
        self.stats.queued_rows = 0
        self._queue_changed()
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    def _unavailable(self) -> Unavailable:
        return Unavailable(f"model {self.name} is unloading; retry on another version or later")

    # the client side ---------------------------------------------------------------------

    async def infer(self, rows: np.ndarray, timeout_s: float, alone: bool = False) -> np.ndarray:
        """Queue `rows` (N, features) and wait for their outputs (N, ...), in order.

        Rows beyond `max_batch_size` are split into several queue entries. Raises Overloaded
        when the queue is full, TimedOut after `timeout_s`; on either, or when the caller is
        cancelled, entries whose batch has not started leave the queue. A request `alone` in
        the server, of at most `inline_max_rows` rows, with nothing queued or running, runs
        at once on the event loop: its forward pass is shorter than the hop to the worker
        thread and back.
        """
        if self._closing:
            raise self._unavailable()
        if self._runs_inline(rows, alone):
            return self._infer_inline(rows)
        if self.stats.queued_rows + len(rows) > self.max_queue_size:
            raise Overloaded(
                f"model {self.name} has {self.stats.queued_rows} rows queued "
                f"(limit {self.max_queue_size}); retry later"
            )
        step = self.max_batch_size
        if len(rows) <= step:
            pending = [self._enqueue(rows)]
        else:
            pending = [self._enqueue(rows[i : i + step]) for i in range(0, len(rows), step)]
        # One timer, not asyncio.timeout(): a quarter of the batcher's cost per request.
        deadline = asyncio.get_running_loop().call_later(
            timeout_s, self._expire, pending, timeout_s
        )
        try:
            outputs = [await entry.future for entry in pending]
        except BaseException:
            self._withdraw(pending)
            raise
        finally:
            deadline.cancel()
        if len(pending) == 1:
            batch_rows, answer = pending[0].batch_rows, outputs[0]
        else:
            batch_rows = max(entry.batch_rows for entry in pending)
            answer = np.concatenate(outputs)
        if self.observer is not None:
            self.observer.request_served(batch_rows)
        return answer

    def infer_now(self, rows: np.ndarray, alone: bool) -> np.ndarray | None:
        """`infer`'s answer at once, for a request it would run on the event loop; None for
        any other (await `infer`). A transport that watches for the client leaving needs no
        watcher for an answer that never waits."""
        if self._closing or not self._runs_inline(rows, alone):
            return None
        return self._infer_inline(rows)

    def _runs_inline(self, rows: np.ndarray, alone: bool) -> bool:
        return alone and len(rows) <= self.inline_max_rows and not self._queue and not self._busy

    def _infer_inline(self, rows: np.ndarray) -> np.ndarray:
        entry = _Pending(rows, None, 0.0)
        entry.started = True
        self.stats.inline_requests += 1
        try:
            answer = self._forward([entry])
        except Exception as error:
            raise InferenceFailed(
                f"model {self.name} failed on this request: {summarize(error)}"
            ) from None
        if self.observer is not None:
            self.observer.request_served(entry.batch_rows)
        return answer

    def _expire(self, pending: list[_Pending], timeout_s: float) -> None:
        """Fail the first unanswered entry (the one its caller awaits); the rest are withdrawn."""
        for entry in pending:
            if not entry.future.done():
                message = f"model {self.name} did not answer within {timeout_s:g} s; retry later"
                entry.future.set_exception(TimedOut(message))
                return

    def _enqueue(self, rows: np.ndarray) -> _Pending:
        loop = asyncio.get_running_loop()
        entry = _Pending(rows, loop.create_future(), loop.time())
        self._queue.append(entry)
        self.stats.queued_rows += len(rows)
        self._queue_changed()
        self._arrived.set()
        return entry

    def _queue_changed(self) -> None:
        if self.observer is not None:
            self.observer.queue_changed(self.stats.queued_rows)

    def _withdraw(self, entries: list[_Pending]) -> None:
        for entry in entries:
            if not entry.started and not entry.withdrawn:
                entry.withdrawn = True
                self.stats.queued_rows -= len(entry.rows)
            entry.future.cancel()
        self._queue_changed()

    # the batching loop -------------------------------------------------------------------

    async def _serve(self) -> None:
        while (batch := await self._next_batch()) is not None:
            try:
                await self._execute(batch)
            except Exception:  # never let one batch stop the loop
                log.exception("batcher %s: unexpected error", self.name)

    async def _next_batch(self) -> list[_Pending] | None:
        """Wait for the first entry, then until the batch is full or the oldest is due.

        None once the batcher is closing and its queue is empty.
        """
        loop = asyncio.get_running_loop()
        while True:
            self._drop_withdrawn_head()
            if not self._queue:
                if self._closing:
                    return None
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if self.stats.queued_rows >= self.max_batch_size or self._closing:
                return self._cut_batch()
            remaining = self._queue[0].enqueued_at + self.max_queue_delay_s - loop.time()
            if remaining <= 0:
                return self._cut_batch()
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                return self._cut_batch()

    def _drop_withdrawn_head(self) -> None:
        while self._queue and self._queue[0].withdrawn:
            self._queue.popleft()

    def _cut_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._queue:
            entry = self._queue[0]
            if entry.withdrawn:
                self._queue.popleft()
                continue
            if size + len(entry.rows) > self.max_batch_size:
                break
            self._queue.popleft()
            entry.started = True
            self.stats.queued_rows -= len(entry.rows)
            size += len(entry.rows)
            batch.append(entry)
        self._queue_changed()
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        self._busy = True
        try:
            await self._execute_batch(batch)
        finally:
            self._busy = False

    async def _execute_batch(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self._forward, batch)
        except asyncio.CancelledError:  # stopped mid-batch: nobody may wait forever
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(self._unavailable())
            raise
        except Exception as error:
            log.warning(
                "batcher %s: batch of %d requests failed (%s); retrying one by one",
                self.name,
                len(batch),
                error,
            )
            self.stats.failed_batches += 1
            await self._execute_one_by_one(batch)
            return
        start = 0
        for entry in batch:
            stop = start + len(entry.rows)
            if not entry.future.done():
                entry.future.set_result(outputs[start:stop])
            start = stop

    async def _execute_one_by_one(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        for entry in batch:
            if entry.future.done():
                continue
            try:
                output = await loop.run_in_executor(self._executor, self._forward, [entry])
            except Exception as error:
                if not entry.future.done():
                    entry.future.set_exception(
                        InferenceFailed(
                            f"model {self.name} failed on this request: {summarize(error)}"
                        )
                    )
                continue
            if not entry.future.done():
                entry.future.set_result(output)

    def _forward(self, batch: Sequence[_Pending]) -> np.ndarray:
        """On the worker thread: one forward pass over the whole batch."""
        began = time.perf_counter()
        rows = sum(len(entry.rows) for entry in batch)
        outputs = self._run_batch([entry.rows for entry in batch])
        self.stats.batches += 1
        self.stats.rows_inferred += rows
        for entry in batch:
            entry.batch_rows = rows
        if self.observer is not None:
            waits = [began - entry.queued_at for entry in batch]
            self.observer.batch_done(rows, time.perf_counter() - began, waits)
        return outputs


def summarize(error: BaseException) -> str:
    """The last meaningful line of an exception: TorchScript errors carry their whole traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text[:300]
