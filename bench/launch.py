"""Start a uvicorn server on a port the kernel picks, and wait until it is ready.

Shared by the benchmarks and the test suite. The server binds port 0 (no window between
choosing a free port and binding it, in which another process could take it) and the port is
read back from uvicorn's start-up line in the server's log.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

# uvicorn's start-up line names the port the kernel chose for --port 0.
RUNNING_ON = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def complete_lines(log_path: Path) -> str:
    """The log so far, up to its last complete line (the server may be mid-write)."""
    if not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace")
    return text[: text.rfind("\n") + 1]


def launch(
    command: list[str],
    log_path: Path,
    *,
    cwd: Path,
    env: dict[str, str],
    ready_path: str = "/v2/health/ready",
    timeout_s: float = 120,
    stop: Callable[[subprocess.Popen[bytes]], object] | None = None,
    base_url: str = "",
) -> tuple[subprocess.Popen[bytes], str]:
    """Run `command` (a uvicorn server told to bind 127.0.0.1 port 0, logging its start-up at
    info level) with its output in `log_path`; return it and its base URL once `ready_path`
    answers 200. A third-party server that cannot bind port 0 passes the `base_url` it was
    given instead. On failure the server is stopped (`stop`, default: SIGTERM and wait) and
    the error quotes its log."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if stop is not None:
                stop(process)  # what it left behind
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log_path)}")
        if not base_url and (running := RUNNING_ON.search(complete_lines(log_path))):
            base_url = running[1]
        try:
            ready = base_url and httpx.get(f"{base_url}{ready_path}", timeout=2)
            if ready and ready.status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        time.sleep(0.02)  # polling the log and readiness, as a load balancer would
    (stop or terminate)(process)
    raise RuntimeError(f"server not ready after {timeout_s:.0f} s:\n{tail(log_path)}")


def terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(log_path: Path, count: int = 20) -> str:
    lines = complete_lines(log_path).strip().splitlines()
    return "\n".join(line[:300] for line in lines[-count:]) or "(empty log)"
