"""Shared pieces of the HTTP benchmarks: a pinned server, a pinned wrk, and their figures.

The server runs on core 0 and wrk on core 1 (`taskset`), so the load generator does not steal
the server's CPU; wrk's Lua script sets the method, body and headers of every request. A
server's CPU time and memory are read from /proc for its whole process tree (LitServe, and
uvicorn with several workers, serve from child processes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.launch import launch

ROOT = Path(__file__).resolve().parent.parent
# Every benchmark writes its report here (git-ignored) unless `--out` says otherwise; the
# reports in bench/results/ are committed on purpose, with `--out bench/results`.
RUNS = Path(__file__).parent / "runs"
SERVER_CORE, LOAD_CORE = "0", "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def serve_reference(app: Any, description: str) -> None:
    """Run a reference app the way `python -m service` runs ours: uvicorn with httptools and
    uvloop, one worker, no access log, on loopback (port 0: the kernel picks; uvicorn's
    start-up line names it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        workers=1,
        access_log=False,
        log_level="info",
    )


def load_arguments(prog: str, description: str | None, connections: int) -> argparse.ArgumentParser:
    """The options every wrk-driven side benchmark takes: load, length, rounds, report folder."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RUNS, help="report folder")
    return parser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- a server's process tree, from /proc -------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on: the command name may hold spaces and ')'."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (utime + stime)."""
    ticks = 0
    for pid in pids:
        try:
            fields = stat_fields(pid)
        except OSError:
            continue  # exited meanwhile
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def resident_bytes(pids: list[int]) -> int:
    """Summed VmRSS (pages shared between a parent and its forked children count in each)."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(found.group(1)) * 1024 if found else 0
    return total


# --- servers ------------------------------------------------------------------------------------


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    ready_s: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counters(self, model: str, version: str | None = None) -> tuple[int, int]:
        """(rows inferred, forward passes) of one model version (default: the one serving
        unversioned requests), from the server's status."""
        status = httpx.get(f"{self.base_url}/v1/models/{model}").json()
        stats = status["stats"][version or status.get("default_version") or "1"]
        return stats["rows_inferred"], stats["batches"]

    def cpu_seconds(self) -> float:
        return cpu_seconds(process_tree(self.process.pid))

    def resident_bytes(self) -> int:
        return resident_bytes(process_tree(self.process.pid))

    def stop(self, timeout: float = 30) -> None:
        stop_process(self.process, timeout)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM the server, wait; then SIGKILL whatever of its process tree is left, by PID."""
    tree = process_tree(process.pid) if process.poll() is None else []
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pid in tree[1:]:  # children a dying parent left behind (e.g. multiprocessing workers)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def start_server(
    command: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    ready_path: str = "/v2/health/ready",
    timeout_s: float = 120,
    port: int | None = None,
) -> RunningServer:
    """Run `command` pinned to the server core; return once `ready_path` answers 200.

    Servers of this repository bind port 0 and the port is read from their log
    (`bench.launch`); `port` is for a third-party server that binds only the port it is given.
    """
    began = time.perf_counter()
    process, base_url = launch(
        ["taskset", "-c", SERVER_CORE, *command],
        log_path,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        ready_path=ready_path,
        timeout_s=timeout_s,
        stop=lambda process: stop_process(process, timeout=5),
        base_url=f"http://127.0.0.1:{port}" if port is not None else "",
    )
    return RunningServer(process, int(base_url.rpartition(":")[2]), time.perf_counter() - began)


def latest_version(model_dir: Path) -> str:
    """The highest numbered version: the one the service answers unversioned requests with."""
    versions = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]
    return str(max(v for v in versions if (model_dir / str(v) / "model.pt").exists()))


def serve_command(models: Path, device: str = "cpu") -> list[str]:
    """`python -m service` on 127.0.0.1, on a port the kernel picks."""
    return [
        sys.executable,
        "-m",
        "service",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--models",
        str(models),
        "--device",
        device,
    ]


# --- wrk ----------------------------------------------------------------------------------------


def lua_script(path: Path, body_file: Path, content_type: str) -> Path:
    """A wrk script that POSTs the bytes of `body_file` with `content_type`."""
    path.write_text(
        f'local f = io.open("{body_file}", "rb")\n'
        'wrk.body = f:read("*all")\nf:close()\n'
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    """req/s, p50/p99 in ms and errors (non-2xx + socket errors) of one wrk run on the load core."""
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
            f"{seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> dict[str, float]:
    """The figures of wrk's `--latency` report."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise ValueError(f"not a wrk report: {output[-300:]!r}")
    result = {"rps": float(rate.group(1))}
    for name in ("50", "99"):
        found = re.search(rf"\s{name}(?:\.000)?%\s+([\d.]+)(us|ms|s)\b", output)
        if found is None:  # no request completed
            result[f"p{name}_ms"] = float("nan")
            continue
        value, unit = found.groups()
        result[f"p{name}_ms"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["errors"] = float(errors.group(1)) if errors else 0.0
    if socket_errors:
        result["errors"] += sum(float(n) for n in socket_errors.groups())
    return result
