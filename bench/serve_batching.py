"""Single-row iris requests at high concurrency, with dynamic batching on and off.

    python -m bench.serve_batching [--connections 64] [--seconds 10] [--rounds 3]

Starts the real server (`python -m service`) pinned to core 0 and wrk pinned to core 1, on a
copy of the bundled iris model whose config.pbtxt has batching on (as shipped) or off
(max_batch_size 1). Reports req/s, latency percentiles, mean batch size (rows / forward passes,
from the server's own counters) and the time from process start to ready. Rounds alternate
the two configurations; medians are reported. Writes bench/results/serve_batching.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
BODY = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
LUA = f"""wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_repo(root: Path, batching: bool) -> Path:
    repo = root / ("batching-on" if batching else "batching-off")
    shutil.copytree(ROOT / "models" / "iris", repo / "iris")
    if not batching:
        config = repo / "iris" / "config.pbtxt"
        config.write_text(re.sub(r"max_batch_size: \d+", "max_batch_size: 1", config.read_text()))
    return repo


def start(repo: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen, float]:
    began = time.perf_counter()
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-m",
            "service",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--models",
            str(repo),
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process, time.perf_counter() - began
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.perf_counter() - began > 60:
            raise RuntimeError("server did not start")
        time.sleep(0.01)


def counters(port: int) -> tuple[int, int]:
    stats = httpx.get(f"http://127.0.0.1:{port}/v1/models/iris").json()["stats"]["1"]
    return stats["rows_inferred"], stats["batches"]


def run_wrk(port: int, connections: int, seconds: int, script: Path) -> dict[str, float]:
    output = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
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
            f"http://127.0.0.1:{port}/v1/models/iris:predict",
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
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


def measure(repo: Path, args: argparse.Namespace, script: Path) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "SERVE_LOG_LEVEL": "warning"}
    process, ready_s = start(repo, port, env)
    try:
        run_wrk(port, args.connections, 2, script)  # warm the connection pool and caches
        rows0, batches0 = counters(port)
        result = run_wrk(port, args.connections, args.seconds, script)
        rows1, batches1 = counters(port)
    finally:
        process.terminate()
        process.wait(timeout=30)
    result["mean_batch"] = (rows1 - rows0) / max(1, batches1 - batches0)
    result["ready_s"] = ready_s
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"batching on": [], "batching off": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        repos = {
            "batching on": make_repo(Path(tmp), True),
            "batching off": make_repo(Path(tmp), False),
        }
        for _ in range(args.rounds):
            for name, repo in repos.items():
                runs[name].append(measure(repo, args, script))
                print(name, json.dumps(runs[name][-1]), flush=True)
    medians = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in runs.items()
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_batching.json").write_text(
        json.dumps(
            {
                "connections": args.connections,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "medians": medians,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    lines = [
        f"| iris, 1 row/request, c={args.connections} | req/s | p50 ms | p99 ms "
        "| mean batch | ready s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in medians.items():
        lines.append(
            f"| {name} | {m['rps']:.0f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} "
            f"| {m['mean_batch']:.1f} | {m['ready_s']:.2f} |"
        )
    ratio = medians["batching on"]["rps"] / medians["batching off"]["rps"]
    lines.append(f"\nbatching on / off: {ratio:.2f}x req/s")
    (RESULTS / "serve_batching.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
