"""Prometheus metrics, prefix `mlp_serve_`: names are a contract for dashboards and autoscalers.

With several uvicorn workers, prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`,
set and emptied by `python -m service` before the workers start) makes `/metrics` whole
whichever worker answers. That mode cannot export per-process collectors: `process_*` (CPU,
memory, file descriptors) and `python_gc_*` / `python_info` are absent there.

Label lookups are cached per (model, version): the hot path does a dict lookup, not
prometheus-client's label validation. Its updates go straight to each child's values
(`Tally`, `Buckets`): prometheus-client's own `inc` and `observe` check every call and search
the buckets one by one, about half of what a lone iris request spent on metrics.

Metrics never stop inference: when their files cannot be written (a full disk under the
multiprocess directory), updates stop, one error line says why, and requests are served on.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import ParamSpec

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from service import metric_files
from service.request_record import note_batch

log = logging.getLogger(__name__)
P = ParamSpec("P")

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    metric_files.install()
disable_created_metrics()  # `*_created` samples double the exposition for no dashboard's use

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
MODEL = ("model", "version")

REQUESTS = Counter(
    "mlp_serve_inference_requests",
    "Inference requests answered, by endpoint and HTTP status",
    (*MODEL, "endpoint", "status"),
)
ROWS = Counter("mlp_serve_inference_rows", "Rows inferred (Triton's nv_inference_count)", MODEL)
BATCHES = Counter(
    "mlp_serve_inference_batches", "Forward passes (Triton's nv_inference_exec_count)", MODEL
)
REQUEST_DURATION = Histogram(
    "mlp_serve_inference_request_duration_seconds",
    "Time from the request's arrival to its answer",
    (*MODEL, "endpoint"),
    buckets=LATENCY_BUCKETS,
)
QUEUE_DURATION = Histogram(
    "mlp_serve_inference_queue_duration_seconds",
    "Time a request's rows waited in the queue before their batch started",
    MODEL,
    buckets=LATENCY_BUCKETS,
)
COMPUTE_DURATION = Histogram(
    "mlp_serve_inference_compute_duration_seconds",
    "Time of one batch: stacking, transfers and the forward pass",
    MODEL,
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "mlp_serve_inference_batch_size", "Rows per forward pass", MODEL, buckets=BATCH_BUCKETS
)
QUEUE_DEPTH = Gauge(
    "mlp_serve_inference_queue_depth",
    "Rows waiting in the queue",
    MODEL,
    multiprocess_mode="livesum",
)
MODEL_READY = Gauge(
    "mlp_serve_model_ready",
    "1 when the version serves, 0 when it failed to load or was unloaded",
    MODEL,
    multiprocess_mode="livemin",
)


class MetricWrites:
    """Whether metric updates still go to their files; once one fails, none is tried again."""

    enabled = True

    @classmethod
    def failed(cls, error: OSError) -> None:
        if cls.enabled:
            cls.enabled = False
            log.error(
                "metrics cannot be written (%s); serving goes on without them",
                error.strerror or error,
                extra={"fields": {"metrics_dir": os.environ.get("PROMETHEUS_MULTIPROC_DIR")}},
            )


def tolerant(update: Callable[P, None]) -> Callable[P, None]:
    """`update`, a no-op once metrics are off; an OSError turns them off instead of failing
    the batch or request that was being counted."""

    @wraps(update)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        if not MetricWrites.enabled:
            return
        try:
            update(*args, **kwargs)
        except OSError as error:
            MetricWrites.failed(error)

    return guarded


class Tally:
    """A counter child's value, incremented without prometheus-client's checks (the amounts
    here are never negative and carry no exemplar)."""

    __slots__ = ("value",)

    def __init__(self, counter: Counter) -> None:
        self.value = counter._value

    def inc(self, amount: float = 1) -> None:
        self.value.inc(amount)


class Buckets:
    """A histogram child's observe by bisection: the same values as `Histogram.observe` (the
    first bucket whose upper bound is at least the amount; the last bound is +Inf)."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, histogram: Histogram) -> None:
        self.bounds = histogram._upper_bounds
        self.buckets = histogram._buckets
        self.sum = histogram._sum

    def observe(self, amount: float) -> None:
        self.sum.inc(amount)
        self.buckets[bisect_left(self.bounds, amount)].inc(1)


class Level:
    """A gauge child's value, set without prometheus-client's checks (livesum mode)."""

    __slots__ = ("value",)

    def __init__(self, gauge: Gauge) -> None:
        self.value = gauge._value

    def set(self, level: float) -> None:
        self.value.set(float(level))


@dataclass(frozen=True)
class VersionMetrics:
    """The metric children of one model version, resolved once."""

    rows: Tally
    batches: Tally
    queue_duration: Buckets
    compute_duration: Buckets
    batch_size: Buckets
    queue_depth: Level

    @tolerant
    def batch_done(self, rows: int, compute_s: float, waits_s: list[float]) -> None:
        """Called on the model's worker thread once per forward pass."""
        self.rows.inc(rows)
        self.batches.inc()
        self.batch_size.observe(rows)
        self.compute_duration.observe(compute_s)
        for wait in waits_s:
            self.queue_duration.observe(wait)

    @tolerant
    def queue_changed(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def request_served(self, batch_rows: int) -> None:
        note_batch(batch_rows)  # for the request's access-log line


class UncountedVersion:
    """The observer of a version whose metrics could not be set up: the access log still
    gets its batch sizes."""

    def batch_done(self, rows: int, compute_s: float, waits_s: list[float]) -> None:
        pass

    def queue_changed(self, depth: int) -> None:
        pass

    def request_served(self, batch_rows: int) -> None:
        note_batch(batch_rows)


def for_version(model: str, version: int) -> VersionMetrics | UncountedVersion:
    if MetricWrites.enabled:
        try:
            return version_metrics(model, version)
        except OSError as error:
            MetricWrites.failed(error)
    return UncountedVersion()


@cache
def version_metrics(model: str, version: int) -> VersionMetrics:
    labels = (model, str(version))
    return VersionMetrics(
        Tally(ROWS.labels(*labels)),
        Tally(BATCHES.labels(*labels)),
        Buckets(QUEUE_DURATION.labels(*labels)),
        Buckets(COMPUTE_DURATION.labels(*labels)),
        Buckets(BATCH_SIZE.labels(*labels)),
        Level(QUEUE_DEPTH.labels(*labels)),
    )


@tolerant
def set_ready(model: str, version: int, ready: bool) -> None:
    MODEL_READY.labels(model, str(version)).set(1 if ready else 0)


@dataclass(frozen=True)
class EndpointMetrics:
    """The request metrics of one (model, version, endpoint), resolved once."""

    labels: tuple[str, str, str]  # model, version, endpoint
    duration: Buckets
    requests: dict[int, Tally]  # by HTTP status, filled as statuses occur

    def done(self, status: int, duration_s: float) -> None:
        counter = self.requests.get(status)
        if counter is None:
            counter = self.requests[status] = Tally(REQUESTS.labels(*self.labels, str(status)))
        counter.inc()
        self.duration.observe(duration_s)


@cache
def for_endpoint(model: str, version: int, endpoint: str) -> EndpointMetrics:
    labels = (model, str(version), endpoint)
    return EndpointMetrics(labels, Buckets(REQUEST_DURATION.labels(*labels)), {})


@tolerant
def request_done(endpoint: str, model: str, version: int, status: int, duration_s: float) -> None:
    """Count one inference request by its outcome and record its time."""
    for_endpoint(model, version, endpoint).done(status, duration_s)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, merged across workers in multiprocess mode."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Drop a finished worker's live gauges (queue depth, readiness) from the merged view."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)
