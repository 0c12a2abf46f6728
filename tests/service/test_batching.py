"""The batcher on its own: plain functions as models, threading events as gates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from service.batching import DynamicBatcher, Observers, summarize
from service.errors import InferenceFailed, Overloaded, TimedOut, Unavailable


class Model:
    """Doubles its input; records every batch; can be held on a gate; raises on a negative row."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.threads: list[str] = []  # where each batch ran
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)

    def __call__(self, blocks: Sequence[np.ndarray]) -> np.ndarray:
        self.entered.release()
        self.gate.wait(timeout=30)
        rows = np.concatenate(blocks)
        self.batches.append(len(rows))
        self.threads.append(threading.current_thread().name)
        if (rows < 0).any():
            raise RuntimeError("negative input\nsecond line of a long trace")
        return rows * 2


def make(model: Model, **options: object) -> DynamicBatcher:
    settings = {"max_batch_size": 8, "max_queue_delay_s": 0.0, "max_queue_size": 64} | options
    return DynamicBatcher(model, name="test", **settings)  # type: ignore[arg-type]


def rows(*values: float) -> np.ndarray:
    return np.array([[v] for v in values], dtype=np.float32)


@contextlib.asynccontextmanager
async def running(model: Model, **options: object) -> AsyncIterator[DynamicBatcher]:
    """A started batcher, stopped (drained) on the way out."""
    batcher = make(model, **options)
    batcher.start()
    try:
        yield batcher
    finally:
        await batcher.stop()


async def hold(batcher: DynamicBatcher, model: Model) -> asyncio.Task[np.ndarray]:
    """Start a request and keep its batch inside the model until `model.gate` is set."""
    model.gate.clear()
    task = asyncio.create_task(batcher.infer(rows(0), timeout_s=30))
    await asyncio.to_thread(model.entered.acquire)
    return task


async def until_queued(batcher: DynamicBatcher, count: int) -> None:
    while batcher.stats.queued_rows != count:
        await asyncio.sleep(0)


def run(coroutine_function) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(asyncio.wait_for(coroutine_function(), timeout=30))


def test_concurrent_requests_are_coalesced() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            held = await hold(batcher, model)
            tasks = [asyncio.create_task(batcher.infer(rows(i), 30)) for i in range(1, 6)]
            await until_queued(batcher, 5)
            model.gate.set()
            results = await asyncio.gather(*tasks)
            await held
            assert [r.item() for r in results] == [2.0, 4.0, 6.0, 8.0, 10.0]
            assert model.batches == [1, 5]
            assert (batcher.stats.batches, batcher.stats.rows_inferred) == (2, 6)

    run(scenario)


def test_batch_is_cut_at_max_batch_size_and_big_requests_are_split() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=4) as batcher:
            held = await hold(batcher, model)
            big = asyncio.create_task(batcher.infer(rows(*range(10)), 30))
            await until_queued(batcher, 10)
            model.gate.set()
            result = await big
            await held
            assert result[:, 0].tolist() == [2.0 * v for v in range(10)]
            assert model.batches == [1, 4, 4, 2]

    run(scenario)


def test_a_batch_of_single_rows_is_cut_at_max_batch_size() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=4) as batcher:
            held = await hold(batcher, model)
            tasks = [asyncio.create_task(batcher.infer(rows(i), 30)) for i in range(1, 6)]
            await until_queued(batcher, 5)
            model.gate.set()
            await asyncio.gather(held, *tasks)
            assert model.batches == [1, 4, 1]

    run(scenario)


def test_full_batch_does_not_wait_for_the_queue_delay() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=4, max_queue_delay_s=600) as batcher:
            # Four rows fill a batch: cut at once, long before the 10-minute delay.
            results = await asyncio.wait_for(
                asyncio.gather(*(batcher.infer(rows(i), 700) for i in range(4))), timeout=20
            )
            assert len(results) == 4
            assert model.batches == [4]

    run(scenario)


def test_partial_batch_waits_for_more_within_the_delay() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=4, max_queue_delay_s=600) as batcher:
            first = asyncio.create_task(batcher.infer(rows(1), 700))
            await until_queued(batcher, 1)
            for _ in range(10):  # the loop gets many chances to cut; it must keep waiting
                await asyncio.sleep(0)
            assert model.batches == []
            rest = [asyncio.create_task(batcher.infer(rows(i), 700)) for i in (2, 3, 4)]
            await asyncio.gather(first, *rest)
            assert model.batches == [4]

    run(scenario)


def test_partial_batch_is_cut_once_the_oldest_row_has_waited_the_delay() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=4, max_queue_delay_s=0.05) as batcher:
            # Two rows of four and nothing else coming: the delay ends and they run as one.
            first = asyncio.create_task(batcher.infer(rows(1), 700))
            await until_queued(batcher, 1)
            second = asyncio.create_task(batcher.infer(rows(2), 700))
            results = await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
            assert [r[0, 0] for r in results] == [2.0, 4.0]
            assert model.batches == [2]

    run(scenario)


def test_failing_request_fails_alone_and_the_batcher_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            held = await hold(batcher, model)
            good = [asyncio.create_task(batcher.infer(rows(v), 30)) for v in (1, 2)]
            bad = asyncio.create_task(batcher.infer(rows(-1), 30))
            await until_queued(batcher, 3)
            model.gate.set()
            assert [(await t).item() for t in good] == [2.0, 4.0]
            with pytest.raises(InferenceFailed, match="second line of a long trace"):
                await bad
            await held
            assert model.batches == [1, 3, 1, 1, 1]  # the failed batch, then one by one
            assert batcher.stats.failed_batches == 1
            assert set(model.threads) == {"infer-test_0"}  # the retries too
            assert (await batcher.infer(rows(5), 30)).item() == 10.0
            with pytest.raises(InferenceFailed):
                await batcher.infer(rows(-2), 30)
            assert batcher.stats.failed_batches == 2

    run(scenario)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings[0] == (
        "batcher test: batch of 3 requests failed (negative input\nsecond line of a long trace); "
        "retrying one by one"
    )


def test_a_withdrawn_request_between_others_leaves_them_one_batch() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            held = await hold(batcher, model)
            first, gone, last = (asyncio.create_task(batcher.infer(rows(v), 30)) for v in (1, 2, 3))
            await until_queued(batcher, 3)
            gone.cancel()
            await asyncio.gather(gone, return_exceptions=True)
            model.gate.set()
            assert [(await t).item() for t in (held, first, last)] == [0.0, 2.0, 6.0]
            assert model.batches == [1, 2]

    run(scenario)


def test_retries_skip_a_request_already_gone_and_answer_the_rest() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=3, max_queue_delay_s=600) as batcher:
            model.gate.clear()
            gone, bad, good = (asyncio.create_task(batcher.infer(rows(v), 700)) for v in (1, -1, 2))
            await asyncio.to_thread(model.entered.acquire)  # the full batch is in the model
            gone.cancel()
            await asyncio.gather(gone, return_exceptions=True)
            assert batcher.stats.queued_rows == 0  # it had left the queue already
            model.gate.set()
            with pytest.raises(InferenceFailed):
                await bad
            assert (await good).item() == 4.0
            assert model.batches == [3, 1, 1]  # the failed batch, then bad and good alone

    run(scenario)


def test_full_queue_is_refused() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_queue_size=3) as batcher:
            held = await hold(batcher, model)
            queued = asyncio.create_task(batcher.infer(rows(1, 2, 3), 30))
            await until_queued(batcher, 3)
            with pytest.raises(Overloaded, match="3 rows queued"):
                await batcher.infer(rows(4), 30)
            model.gate.set()
            await asyncio.gather(held, queued)

    run(scenario)


def test_timed_out_request_leaves_the_queue() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            held = await hold(batcher, model)
            with pytest.raises(TimedOut, match=r"^model test did not answer within 0.001 s; retry"):
                await batcher.infer(rows(7), timeout_s=0.001)
            assert batcher.stats.queued_rows == 0
            model.gate.set()
            await held
            assert (await batcher.infer(rows(1), 30)).item() == 2.0
            assert model.batches == [1, 1]  # the timed-out row never reached the model

    run(scenario)


def test_cancelled_request_leaves_the_queue() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            held = await hold(batcher, model)
            abandoned = asyncio.create_task(batcher.infer(rows(7, 8), 30))
            await until_queued(batcher, 2)
            abandoned.cancel()
            await asyncio.gather(abandoned, return_exceptions=True)
            assert batcher.stats.queued_rows == 0
            model.gate.set()
            await held
            await batcher.infer(rows(1), 30)
            assert model.batches == [1, 1]

    run(scenario)


def test_stop_finishes_queued_requests_and_refuses_new_ones() -> None:
    model = Model()

    async def scenario() -> None:
        batcher = make(model)
        batcher.start()
        held = await hold(batcher, model)
        queued = asyncio.create_task(batcher.infer(rows(1), 30))
        await until_queued(batcher, 1)
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0)
        with pytest.raises(Unavailable, match="unloading"):
            await batcher.infer(rows(2), 30)
        model.gate.set()
        assert (await queued).item() == 2.0
        await asyncio.gather(held, stopping)
        assert model.batches == [1, 1]

    run(scenario)


def test_stop_does_not_wait_out_the_queue_delay() -> None:
    model = Model()

    async def scenario() -> None:
        batcher = make(model, max_queue_delay_s=600)
        batcher.start()
        waiting = asyncio.create_task(batcher.infer(rows(3), 700))
        await until_queued(batcher, 1)
        await asyncio.wait_for(batcher.stop(), timeout=20)  # not the 10-minute delay
        assert (await waiting).item() == 6.0

    run(scenario)


def test_stop_after_its_timeout_answers_the_rest_with_503() -> None:
    model = Model()

    async def scenario() -> None:
        batcher = make(model)
        batcher.start()
        held = await hold(batcher, model)
        queued = asyncio.create_task(batcher.infer(rows(1), 30))
        await until_queued(batcher, 1)
        stopping = asyncio.create_task(batcher.stop(timeout_s=0.001))
        with pytest.raises(Unavailable):
            await queued
        model.gate.set()
        await stopping
        with pytest.raises(Unavailable):  # its batch was cut short: answered, not lost
            await held

    run(scenario)


def test_a_lone_small_request_runs_on_the_event_loop() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, inline_max_rows=2) as batcher:
            answer = await batcher.infer(rows(1, 2), 30, alone=True)
            assert answer.ravel().tolist() == [2.0, 4.0]
            assert model.threads == [threading.current_thread().name]
            assert (batcher.stats.inline_requests, batcher.stats.batches) == (1, 1)
            assert batcher.stats.rows_inferred == 2

    run(scenario)


def test_infer_now_answers_what_would_run_inline_and_nothing_else() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, inline_max_rows=2) as batcher:
            assert batcher.infer_now(rows(1, 2), alone=False) is None  # with company
            assert batcher.infer_now(rows(1, 2, 3), alone=True) is None  # too many rows
            assert batcher.infer_now(rows(1, 2), alone=True).ravel().tolist() == [2.0, 4.0]
            held = await hold(batcher, model)
            assert batcher.infer_now(rows(1), alone=True) is None  # the worker is busy
            model.gate.set()
            await held
            assert (batcher.stats.inline_requests, model.threads[0]) == (1, "MainThread")

    run(scenario)


@pytest.mark.parametrize(
    ("inline_max_rows", "alone", "values"),
    [(2, False, (1,)), (2, True, (1, 2, 3)), (0, True, (1,))],
    ids=["with-company", "too-many-rows", "not-inline-safe"],
)
def test_other_requests_go_through_the_worker_thread(
    inline_max_rows: int, alone: bool, values: tuple[float, ...]
) -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, inline_max_rows=inline_max_rows) as batcher:
            await batcher.infer(rows(*values), 30, alone=alone)
            assert model.threads == ["infer-test_0"]
            assert batcher.stats.inline_requests == 0

    run(scenario)


def test_a_lone_request_queues_while_a_batch_runs_or_rows_wait() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, inline_max_rows=4) as batcher:
            held = await hold(batcher, model)
            queued = asyncio.create_task(batcher.infer(rows(1), 30, alone=True))
            await until_queued(batcher, 1)  # not run on the loop while the worker is busy
            late = asyncio.create_task(batcher.infer(rows(2), 30, alone=True))
            await until_queued(batcher, 2)  # nor ahead of rows already waiting
            model.gate.set()
            assert [(await t).item() for t in (held, queued, late)] == [0.0, 2.0, 4.0]
            assert batcher.stats.inline_requests == 0
            assert set(model.threads) == {"infer-test_0"}

    run(scenario)


def test_a_lone_request_runs_on_the_event_loop_again_once_the_batch_is_done() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, inline_max_rows=2) as batcher:
            assert (await batcher.infer(rows(1), 30)).item() == 2.0  # through the worker
            assert (await batcher.infer(rows(2), 30, alone=True)).item() == 4.0
            assert batcher.stats.inline_requests == 1
            assert model.threads == ["infer-test_0", threading.current_thread().name]

    run(scenario)


def test_a_lone_request_that_fails_inline_gets_inference_failed() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, inline_max_rows=4) as batcher:
            with pytest.raises(
                InferenceFailed,
                match=r"^model test failed on this request: second line of a long trace$",
            ):
                await batcher.infer(rows(-1), 30, alone=True)
            assert (await batcher.infer(rows(3), 30, alone=True)).item() == 6.0

    run(scenario)


class Recorder:
    """An observer that keeps what it is told."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []  # (rows, requests waited for)
        self.depths: list[int] = []
        self.served: list[int] = []
        self.durations: list[float] = []  # compute and queue times, seconds

    def batch_done(self, rows: int, compute_s: float, waits_s: list[float]) -> None:
        self.durations.extend([compute_s, *waits_s])
        self.batches.append((rows, len(waits_s)))

    def queue_changed(self, depth: int) -> None:
        self.depths.append(depth)

    def request_served(self, batch_rows: int) -> None:
        self.served.append(batch_rows)


def test_every_observer_hears_of_batches_queue_depths_and_served_requests() -> None:
    model = Model()
    recorders = (Recorder(), Recorder())

    async def scenario() -> None:
        observer = Observers(*recorders)
        async with running(
            model, max_batch_size=4, inline_max_rows=1, observer=observer
        ) as batcher:
            held = await hold(batcher, model)
            big = asyncio.create_task(batcher.infer(rows(2, 3, 4, 5, 6), 30))
            await until_queued(batcher, 5)
            small = asyncio.create_task(batcher.infer(rows(1), 30))
            await until_queued(batcher, 6)
            model.gate.set()
            await asyncio.gather(held, small, big)
            await batcher.infer(rows(7), 30, alone=True)
            await batcher.infer(rows(8), 30, alone=True)
            assert batcher.stats.inline_requests == 2

    began = time.perf_counter()
    run(scenario)
    elapsed = time.perf_counter() - began
    for recorder in recorders:
        # no bound on how long, only that each lies within the scenario
        assert all(0 <= seconds <= elapsed for seconds in recorder.durations)
        # held alone; four rows of big; its fifth with small; two inline
        assert recorder.batches == [(1, 1), (4, 1), (2, 2), (1, 1), (1, 1)]
        # big: the largest pass it went through; small: the pass of two
        served = recorder.served
        assert [served[0], *sorted(served[1:3]), *served[3:]] == [1, 2, 4, 1, 1]
        assert recorder.depths[-1] == 0
        assert max(recorder.depths) == 6


def test_summarize_keeps_the_last_line_only() -> None:
    assert summarize(RuntimeError("Traceback of TorchScript\n  File x\nValueError: boom")) == (
        "ValueError: boom"
    )
    assert summarize(RuntimeError("")) == "RuntimeError"
    assert summarize(RuntimeError("x" * 400)) == "x" * 300


def test_a_batcher_told_no_inline_rows_never_runs_inline() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            await batcher.infer(rows(1), 30, alone=True)
            assert (batcher.stats.inline_requests, model.threads) == (0, ["infer-test_0"])

    run(scenario)


def test_the_batcher_task_is_named_and_gone_once_stopped() -> None:
    model = Model()

    def batcher_tasks() -> list[asyncio.Task]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "batcher-test"]

    async def scenario() -> None:
        batcher = make(model)
        await batcher.stop()  # never started: nothing to stop
        batcher = make(model)
        batcher.start()
        assert len(batcher_tasks()) == 1
        held = await hold(batcher, model)
        stopping = asyncio.create_task(batcher.stop(timeout_s=0.01))  # cuts the loop short
        with pytest.raises(Unavailable):
            await held  # answered once the timeout passed, its batch still in the model
        model.gate.set()  # the worker thread may end now, and with it `stop`
        await stopping
        assert batcher_tasks() == []

    run(scenario)


def test_stop_returns_only_once_a_pass_cut_short_has_ended() -> None:
    """The drain timeout answers the request, but the model may still run its batch: stop waits
    for the worker thread, which the caller may free the model's memory after. The test opens
    the gate once stop joins that thread, or once stop returned without joining it."""
    model = Model()

    async def scenario() -> None:
        batcher = make(model)
        batcher.start()
        held = await hold(batcher, model)
        (worker,) = batcher._executor._threads
        joining = threading.Event()
        join = worker.join

        def watched_join(timeout: float | None = None) -> None:
            joining.set()
            join(timeout)

        worker.join = watched_join  # type: ignore[method-assign]
        stopping = asyncio.create_task(batcher.stop(timeout_s=0.01))
        with pytest.raises(Unavailable):
            await held
        while not (joining.is_set() or stopping.done()):
            await asyncio.sleep(0)
        returned_first = stopping.done()
        model.gate.set()
        await stopping
        assert not returned_first
        assert model.batches == [1]  # the pass ran to its end before stop returned

    run(scenario)


def test_a_request_of_twice_the_batch_size_gets_all_its_rows_back() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=4) as batcher:
            result = await batcher.infer(rows(*range(8)), 30)
            assert result[:, 0].tolist() == [2.0 * v for v in range(8)]
            assert model.batches == [4, 4]

    run(scenario)


def test_an_unexpected_error_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            execute = batcher._execute
            calls = []

            async def fails_once(batch):  # type: ignore[no-untyped-def]
                calls.append(len(batch))
                if len(calls) == 1:
                    for entry in batch:  # answered, so the request does not wait for ever
                        entry.future.set_exception(RuntimeError("lost"))
                    raise RuntimeError("a bug in the batcher")
                await execute(batch)

            monkeypatch.setattr(batcher, "_execute", fails_once)
            with pytest.raises(RuntimeError, match="lost"):
                await batcher.infer(rows(1), 30)
            assert (await batcher.infer(rows(2), 30)).tolist() == [[4.0]]

    with caplog.at_level(logging.ERROR, logger="service.batching"):
        run(scenario)
    assert [r.getMessage() for r in caplog.records] == ["batcher test: unexpected error"]
