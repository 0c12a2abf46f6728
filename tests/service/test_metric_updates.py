"""The hot path's metric updates (`Tally`, `Buckets`, `Level`) write what prometheus-client's
own `inc`, `observe` and `set` would: a prometheus-client that changes its internals fails here
rather than miscounting."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.metrics import LATENCY_BUCKETS, Buckets, Level, Tally

# Every bound exactly, either side of each, below the first and past the last.
AMOUNTS = [0.0, 1e-5, *LATENCY_BUCKETS, *(b * 1.0001 for b in LATENCY_BUCKETS), 42.0]


def metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram, Gauge]:
    return (
        Counter("c", "c", ("x",), registry=registry),
        Histogram("h", "h", ("x",), buckets=LATENCY_BUCKETS, registry=registry),
        Gauge("g", "g", ("x",), registry=registry),
    )


def test_the_direct_updates_expose_what_prometheus_client_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter, histogram, gauge = metrics(theirs)
    ours_counter, ours_histogram, ours_gauge = metrics(ours)
    tally = Tally(ours_counter.labels("a"))
    buckets = Buckets(ours_histogram.labels("a"))
    level = Level(ours_gauge.labels("a"))
    for amount in AMOUNTS:
        counter.labels("a").inc(amount)
        tally.inc(amount)
        histogram.labels("a").observe(amount)
        buckets.observe(amount)
        gauge.labels("a").set(amount * 3)
        level.set(amount * 3)
    tally.inc()
    counter.labels("a").inc()
    assert generate_latest(ours) == generate_latest(theirs)
    assert b'h_bucket{le="0.0005",x="a"} 3.0' in generate_latest(ours)  # the bounds count in
