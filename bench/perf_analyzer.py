"""Triton's perf_analyzer: installed from the package registries, run against this server.

The binary ships in the `tritonclient==2.41.0` wheel (`tritonclient-2.41.0.data/data/bin/`);
it links libcudart.so.12, which the `nvidia-cuda-runtime-cu12` wheel carries (no GPU needed
to run it), and libb64.so.0d (Debian's libb64-0d, which `make test` installs as it does
chromium). `python -m bench.perf_analyzer install DIR` puts both under DIR; `... sweep DIR`
measures iris over HTTP and gRPC at concurrency 1 to 64 (`make bench` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "tritonclient==2.41.0"
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12"
BINARY = "tritonclient-2.41.0.data/data/bin/perf_analyzer"
CUDART = "nvidia/cuda_runtime/lib/libcudart.so.12"


def install(directory: Path) -> Path:
    """perf_analyzer and the libcudart it links, under `directory`; the binary's path."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as wheels:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--dest",
                wheels,
                WHEEL,
                CUDA_RUNTIME,
            ],
            check=True,
        )
        for wheel in Path(wheels).glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                for member in (BINARY, CUDART):
                    if member in archive.namelist():
                        target = directory / Path(member).name
                        target.write_bytes(archive.read(member))
                        target.chmod(0o755)
    return directory / "perf_analyzer"


def run(
    binary: Path,
    model: str,
    url: str,
    protocol: str,
    concurrency: str,
    requests: int = 200,
    timeout_s: float = 300,
) -> subprocess.CompletedProcess[str]:
    """A bounded run: windows of `requests` requests each, stabilised on average latency."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
    command = [
        str(binary),
        "-m",
        model,
        "-u",
        url,
        "-i",
        protocol,
        "--concurrency-range",
        concurrency,
        "--measurement-mode",
        "count_windows",
        "--measurement-request-count",
        str(requests),
        # A shared machine's latency wanders: any three windows in a row will do.
        "--stability-percentage",
        "999",
        "--max-trials",
        "10",
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
    )


def figures(output: str) -> list[dict[str, float]]:
    """(concurrency, infer/s, p50 ms, p99 ms) of each concurrency perf_analyzer measured."""
    found = []
    for block in output.split("Request concurrency: ")[1:]:
        concurrency = float(block.split()[0])
        rate = re.search(r"Throughput: ([\d.]+) infer/sec", block)
        p50 = re.search(r"p50 latency: (\d+) usec", block)
        p99 = re.search(r"p99 latency: (\d+) usec", block)
        if rate and p50 and p99:
            found.append(
                {
                    "concurrency": concurrency,
                    "infer_per_s": float(rate[1]),
                    "p50_ms": int(p50[1]) / 1e3,
                    "p99_ms": int(p99[1]) / 1e3,
                }
            )
    return found


def sweep(binary: Path, out: Path, requests: int) -> list[dict[str, object]]:
    """iris over HTTP and gRPC at concurrency 1, 4, 16 and 64 against one server (pinned as
    the HTTP bench pins it), alternating the protocols at each concurrency."""
    from bench.harness import ROOT, free_port, serve_command, start_server

    grpc_port = free_port()
    env = {"SERVE_DRAIN_DELAY_S": "0", "SERVE_GRPC_PORT": str(grpc_port)}
    server = start_server(serve_command(ROOT / "models"), out / "perf-analyzer-server.log", env)
    urls = {"http": server.base_url.removeprefix("http://"), "grpc": f"127.0.0.1:{grpc_port}"}
    rows: list[dict[str, object]] = []
    try:
        for concurrency in ("1", "4", "16", "64"):
            for protocol in ("http", "grpc"):
                done = run(binary, "iris", urls[protocol], protocol, concurrency, requests)
                for figure in figures(done.stdout):
                    rows.append({"protocol": protocol, **figure})
                    print(rows[-1], flush=True)
    finally:
        server.stop()
    return rows


DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".venv" / "tools" / "perf_analyzer"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["install", "sweep"])
    parser.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=DEFAULT_DIR,
        help=f"where perf_analyzer is (or goes); default {DEFAULT_DIR}",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "runs")
    parser.add_argument("--requests", type=int, default=2000, help="per measurement window")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.command == "install":
        print(install(args.directory))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows = sweep(args.directory / "perf_analyzer", args.out, args.requests)
    (args.out / "perf_analyzer.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
