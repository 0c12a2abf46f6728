"""Shared pieces of the HTTP benchmarks: a pinned server, a pinned wrk, and their figures.

The server runs on core 0 and wrk on core 1 (`taskset`), so the load generator does not steal
the server's CPU; wrk's Lua script sets the method, body and headers of every request.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
SERVER_CORE, LOAD_CORE = "0", "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    ready_s: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counters(self, model: str, version: str = "1") -> tuple[int, int]:
        """(rows inferred, forward passes) of one model version, from the server's status."""
        stats = httpx.get(f"{self.base_url}/v1/models/{model}").json()["stats"][version]
        return stats["rows_inferred"], stats["batches"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_server(
    command: list[str],
    port: int,
    env: dict[str, str] | None = None,
    ready_path: str = "/v2/health/ready",
) -> RunningServer:
    """Run `command` pinned to the server core; return once `ready_path` answers 200."""
    began = time.perf_counter()
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}{ready_path}"
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return RunningServer(process, port, time.perf_counter() - began)
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.perf_counter() - began > 120:
            process.kill()
            raise RuntimeError(f"{command} did not become ready")
        time.sleep(0.01)


def serve_command(models: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "service",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--models",
        str(models),
        "--device",
        "cpu",
    ]


def lua_script(path: Path, body_file: Path, content_type: str) -> Path:
    """A wrk script that POSTs the bytes of `body_file` with `content_type`."""
    path.write_text(
        f'local f = io.open("{body_file}", "rb")\n'
        'wrk.body = f:read("*all")\nf:close()\n'
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    """req/s, p50/p99 in ms and non-2xx count of one wrk run pinned to the load core."""
    output = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for name in ("50", "99"):
        value, unit = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", output).groups()
        result[f"p{name}_ms"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["errors"] = float(errors.group(1)) if errors else 0.0
    if socket_errors:
        result["errors"] += sum(float(n) for n in socket_errors.groups())
    return result
