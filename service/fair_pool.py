"""A thread pool that serves its callers in turn: each caller's jobs wait in a queue of their
own, and the threads take one job from each waiting caller after another (round robin).

With a plain pool's single queue, a request of 64 large images would hold every thread while
a one-image request that came after it waited behind all 64. Here that one image is next. A
caller alone still gets every thread. Jobs whose future was cancelled before they started (the
request timed out, or its client left) are skipped, never run.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

Job = tuple[Callable[[], Any], Future]


class FairPool:
    def __init__(self, workers: int, name: str) -> None:
        self._ready = threading.Condition()
        self._callers: OrderedDict[int, deque[Job]] = OrderedDict()
        self._ids = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit_all(self, jobs: Sequence[Callable[[], Any]]) -> list[Future]:
        """Queue one caller's jobs together; their futures, in order."""
        futures: list[Future] = [Future() for _ in jobs]
        with self._ready:
            if self._closed:
                raise RuntimeError("the pool is closed")
            self._callers[next(self._ids)] = deque(zip(jobs, futures, strict=True))
            self._ready.notify(len(jobs))
        return futures

    def _next_job(self) -> Job | None:
        """The next caller's next job (None once closed); that caller goes to the back."""
        with self._ready:
            while not self._callers and not self._closed:
                self._ready.wait()
            if not self._callers:
                return None
            caller, jobs = next(iter(self._callers.items()))
            job = jobs.popleft()
            if jobs:
                self._callers.move_to_end(caller)
            else:
                del self._callers[caller]
            return job

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            run, future = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                result = run()
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(result)

    def close(self) -> None:
        """Cancel what waits, let running jobs finish, stop the threads."""
        with self._ready:
            self._closed = True
            for jobs in self._callers.values():
                for _, future in jobs:
                    future.cancel()
            self._callers.clear()
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()
