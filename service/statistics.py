"""Triton's statistics extension: per model version, what its requests and batches did, as
counts and cumulative nanoseconds (`GET /v2/models/stats`, gRPC `ModelStatistics`).

Fed by the batcher's observer (batches: queue and compute time of every request in them) and
by the transports' request hooks (each request's success or failure and its duration). The
counters are this process's, since it started (with `--workers N`, one worker's).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
BATCH_PHASES = ("compute_input", "compute_infer", "compute_output")


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, times: int = 1) -> None:
        self.count += times
        self.ns += round(seconds * 1e9) * times

    def as_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class VersionStatistics:
    """One version's counters; `batch_done` runs on its worker thread, the rest on the loop."""

    name: str
    version: int
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    phases: dict[str, Duration] = field(default_factory=lambda: {p: Duration() for p in PHASES})
    batches: dict[int, dict[str, Duration]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # the batcher's observer ------------------------------------------------------------------

    def batch_done(self, rows: int, compute_s: float, waits_s: list[float]) -> None:
        """Triton's accounting: every request of the batch spent the batch's compute time.

        Stacking, the transfers and the forward pass are timed as one (compute_infer);
        compute_input and compute_output are counted alike (clients such as perf_analyzer
        require equal counts) with no time of their own.
        """
        requests = len(waits_s)
        compute_ns = round(compute_s * 1e9)
        queue_ns = sum(round(wait * 1e9) for wait in waits_s)
        with self.lock:
            self.inference_count += rows
            self.execution_count += 1
            phases = self.phases
            for phase in BATCH_PHASES:
                phases[phase].count += requests
            phases["compute_infer"].ns += compute_ns * requests
            phases["queue"].count += requests
            phases["queue"].ns += queue_ns
            batch = self.batches.get(rows)
            if batch is None:
                batch = self.batches[rows] = {p: Duration() for p in BATCH_PHASES}
            for phase in BATCH_PHASES:
                batch[phase].count += 1
            batch["compute_infer"].ns += compute_ns

    def queue_changed(self, depth: int) -> None:
        pass

    def request_served(self, batch_rows: int) -> None:
        pass  # the request's own batch size goes to its record through the metrics observer

    # the request hooks -----------------------------------------------------------------------

    def request_done(self, ok: bool, duration_s: float) -> None:
        with self.lock:
            self.phases["success" if ok else "fail"].add(duration_s)
            if ok:
                self.last_inference_ms = int(time.time() * 1e3)

    def as_json(self) -> dict[str, Any]:
        """Triton's JSON form (the gRPC message parses from it)."""
        with self.lock:
            return {
                "name": self.name,
                "version": str(self.version),
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {
                    **{p: d.as_json() for p, d in self.phases.items()},
                    "cache_hit": Duration().as_json(),
                    "cache_miss": Duration().as_json(),
                },
                "batch_stats": [
                    {"batch_size": size, **{p: d.as_json() for p, d in phases.items()}}
                    for size, phases in sorted(self.batches.items())
                ],
            }


@cache
def for_version(model: str, version: int) -> VersionStatistics:
    return VersionStatistics(model, version)


def request_done(model: str, version: int, status: int, duration_s: float) -> None:
    for_version(model, version).request_done(status == 200, duration_s)
