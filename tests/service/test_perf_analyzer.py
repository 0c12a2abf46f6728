"""Triton's own benchmark client, perf_analyzer, against the real server over HTTP and gRPC:
it reads the model's metadata and configuration, sends inferences at a fixed concurrency,
and reports throughput and latency percentiles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.perf_analyzer import figures, run
from tests.conftest import ROOT, copy_bundled
from tests.service.conftest import Server, start_with_grpc

BINARY = ROOT / ".venv" / "tools" / "perf_analyzer" / "perf_analyzer"
pytestmark = pytest.mark.skipif(
    not BINARY.exists(), reason=f"needs Triton's perf_analyzer at {BINARY} (make test installs it)"
)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("perf-analyzer")
    server = start_with_grpc(copy_bundled(directory / "models", "iris"), directory / "server.log")
    yield server
    server.stop()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_completes_and_reports(measured: Server, protocol: str) -> None:
    url = measured.base_url.removeprefix("http://") if protocol == "http" else measured.grpc_address
    done = run(BINARY, "iris", url, protocol, concurrency="4", requests=100)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (result,) = figures(done.stdout)
    assert result["concurrency"] == 4
    assert result["infer_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
