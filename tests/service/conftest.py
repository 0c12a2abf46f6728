"""A real uvicorn server on a free loopback port, started once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.launch import complete_lines, launch, terminate
from tests.conftest import ROOT, copy_bundled
from tests.service.fixture_models import Gate, build_test_repository

STARTUP_TIMEOUT_S = 120
# Pillow format -> the Content-Type of a raw upload; every type `:predict-image` accepts.
UPLOAD_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    grpc_address: str = ""  # host:port, for a server started with gRPC

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        """The log so far, up to its last complete line (the server may be mid-write)."""
        return complete_lines(self.log_path)

    def stop(self) -> int:
        """Stop this server by its own PID (SIGTERM, then SIGKILL); returns its exit code."""
        if self.process.poll() is None:
            terminate(self.process)
        return self.process.returncode


def start_server(
    models: Path, log_path: Path, *, python_path: Path | None = None, **settings: str
) -> Server:
    """`python -m service` bound to 127.0.0.1 with SERVE_* settings; returns once it is ready.

    The port is 0 (the kernel picks a free one at bind time) and read back from the server's
    log, as the benchmarks start it (`bench.launch`). `python_path` goes first on PYTHONPATH
    (a `sitecustomize` there runs before the server)."""
    settings.setdefault("drain_delay_s", "0")  # tests that drain set their own delay
    settings.setdefault("grpc_port", "0")  # gRPC's own tests ask for it
    env = {**os.environ, **{f"SERVE_{k.upper()}": v for k, v in settings.items()}}
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(python_path), str(ROOT)]))
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", "0"]
    process, base_url = launch(
        [*command, "--models", str(models), "--device", "cpu"],
        log_path,
        cwd=ROOT,
        env=env,
        timeout_s=STARTUP_TIMEOUT_S,
    )
    return Server(base_url, process, log_path)


def free_port() -> int:
    """A port free now. For gRPC only: the server binds it without SO_REUSEPORT, so a port
    taken meanwhile makes it exit at start, and `start_with_grpc` tries another."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_with_grpc(models: Path, log_path: Path, **settings: str) -> Server:
    """`start_server` with the gRPC service on too (its address in `grpc_address`)."""
    error = RuntimeError("no free port")
    for _ in range(3):
        port = free_port()
        try:
            server = start_server(models, log_path, grpc_port=str(port), **settings)
        except RuntimeError as failed:
            error = failed
            continue
        server.grpc_address = f"127.0.0.1:{port}"
        return server
    raise error


@pytest.fixture(scope="session")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Gate:
    return Gate(tmp_path_factory.mktemp("gate") / "gate.bin")


@pytest.fixture
def closed_gate(gate: Gate) -> Iterator[Gate]:
    """The gate, open again after the test whatever happens (as every other test expects)."""
    try:
        yield gate
    finally:
        gate.open()


@pytest.fixture(scope="session")
def test_repo(tmp_path_factory: pytest.TempPathFactory, gate: Gate) -> Path:
    root = copy_bundled(tmp_path_factory.mktemp("repo") / "models")
    build_test_repository(root, gate)
    return root


@pytest.fixture(scope="session")
def server(test_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    server = start_server(
        test_repo, log_path, max_queue_size="256", request_timeout_s="60", drain_timeout_s="60"
    )
    yield server
    server.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    """Poll an observable count until it holds (bounded); fails the test with `what` if not."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def wait_ready(client: Any) -> None:
    """Poll an in-process app's readiness (its repository loads in the background)."""
    wait_until(lambda: client.get("/v2/health/ready").status_code == 200, "the app ready", 120)
