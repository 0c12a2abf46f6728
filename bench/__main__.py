"""`python -m bench` (`make bench`): mlp-serve against both ceilings, naive and LitServe.

    python -m bench [--seconds 10] [--rounds 3] [--only iris mnist] [--quick]

Every scenario (bench/scenarios.py) is run with wrk on core 1 against each system's server on
core 0: the project (`python -m service`, default settings), the bare Litestar ceiling
(bench/ceiling.py), the raw ASGI ceiling (bench/raw_asgi.py), the naive inline server
(bench/naive.py) and LitServe (bench/litserve_app.py, in its own venv bench/.venv-litserve,
created on first use). Each round starts every server once, runs its scenarios (warm-up, then
the measured run) and stops it; rounds alternate the order of the systems. Writes
bench.{md,json} and bench_{rps,p99}.png to --out (bench/runs/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.bodies import write_bodies
from bench.harness import (
    ROOT,
    RUNS,
    RunningServer,
    free_port,
    latest_version,
    lua_script,
    run_wrk,
    serve_command,
    start_server,
)
from bench.scenarios import COUNTING_SERVERS, SYSTEMS, Scenario, build_scenarios, select
from bench.serve_batching import make_repo

LITSERVE_VENV = Path(__file__).parent / ".venv-litserve"
LITSERVE_PACKAGES = ["litserve", "torch==2.14.1", "numpy"]
# SERVE_DRAIN_DELAY_S only shortens the stop (readiness 503 for 5 s after SIGTERM by default).
PROJECT_ENV = {"SERVE_DRAIN_DELAY_S": "0", "SERVE_GRPC_PORT": "0"}  # HTTP alone, as before
# A run that fails (wrk's error, the server gone) is reported, and the bench goes on.
RUN_ERRORS = (subprocess.CalledProcessError, ValueError, OSError, httpx.HTTPError, KeyError)
SERVERS = ("project", "project-unbatched", "ceiling", "raw", "naive", "litserve")
# The reference servers of this repository, by the module that serves each.
REFERENCE_MODULES = {"ceiling": "bench.ceiling", "raw": "bench.raw_asgi", "naive": "bench.naive"}


class Bench:
    """One benchmark run: its folders, bodies, scripts and what it measured so far."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.bodies = write_bodies(workdir)
        self.scripts = {
            name: lua_script(workdir / f"{name}.lua", body.path, body.content_type)
            for name, body in self.bodies.items()
        }
        self.runs: report.Runs = {}
        self.ready: dict[str, list[float]] = {}
        self.failures: dict[str, str] = {}
        self.litserve_python: Path | None = None

    def server_command(self, server: str, port: int) -> tuple[list[str], str, dict[str, str]]:
        """(command, readiness path, extra environment) of one server; only LitServe binds the
        `port` given, the others bind port 0 and name theirs in the log."""
        python, device = sys.executable, self.args.device
        if server == "project":
            return serve_command(ROOT / "models", device), "/v2/health/ready", PROJECT_ENV
        if server == "project-unbatched":
            repo = self.workdir / "batching-off"
            if not repo.exists():
                make_repo(self.workdir, batching=False)
            return serve_command(repo, device), "/v2/health/ready", PROJECT_ENV
        if server in REFERENCE_MODULES:
            return [python, "-m", REFERENCE_MODULES[server]], "/v2/health/ready", {}
        assert self.litserve_python is not None
        command = [
            str(self.litserve_python),
            str(Path(__file__).parent / "litserve_app.py"),
            str(port),
            "--batch-timeout",
            str(self.args.litserve_batch_timeout),
        ]
        return command, "/health", {}

    def run_round(self, number: int, scenarios: list[Scenario]) -> None:
        order = SERVERS if number % 2 == 0 else tuple(reversed(SERVERS))
        for server in order:
            mine = [
                (scenario, system)
                for scenario in scenarios
                for system, target in scenario.targets.items()
                if target.server == server
            ]
            if mine and server not in self.failures:
                self.run_server(server, mine)

    def run_server(self, server: str, work: list[tuple[Scenario, str]]) -> None:
        port = free_port()  # LitServe's; a window another process could take it in remains
        command, ready_path, env = self.server_command(server, port)
        log = self.workdir / f"{server}.log"
        try:
            running = start_server(
                command, log, env, ready_path, port=port if server == "litserve" else None
            )
        except RuntimeError as error:
            self.failures[server] = f"did not start ({error})"
            print(f"{server}: {self.failures[server]}", flush=True)
            return
        self.ready.setdefault(server, []).append(running.ready_s)
        print(f"{server}: ready in {running.ready_s:.2f} s", flush=True)
        try:
            for scenario, system in work:
                try:
                    result = self.measure(running, scenario, system)
                except RUN_ERRORS as error:
                    self.failures[f"{scenario.name} / {system}"] = f"run failed: {error}"
                    continue
                self.runs.setdefault(scenario.name, {}).setdefault(system, []).append(result)
                print(f"  {scenario.name:<34} {system:<9} {summary_line(result)}", flush=True)
        finally:
            running.stop()

    def measure(self, server: RunningServer, scenario: Scenario, system: str) -> dict[str, Any]:
        target = scenario.targets[system]
        url, script = server.base_url + target.path, self.scripts[target.body]
        counts = target.server in COUNTING_SERVERS and scenario.model is not None
        run_wrk(url, script, scenario.connections, self.args.warmup)
        before = server.counters(scenario.model) if counts else None
        cpu_before, began = server.cpu_seconds(), time.perf_counter()
        result: dict[str, Any] = run_wrk(url, script, scenario.connections, self.args.seconds)
        elapsed, cpu_after = time.perf_counter() - began, server.cpu_seconds()
        result["cpu_pct"] = 100 * (cpu_after - cpu_before) / elapsed
        result["rss_mib"] = server.resident_bytes() / 2**20
        result["mean_batch"] = None
        if before is not None:
            rows_after, batches_after = server.counters(scenario.model)
            rows, batches = rows_after - before[0], batches_after - before[1]
            result["mean_batch"] = rows / batches if batches else None
        return result


def summary_line(result: dict[str, Any]) -> str:
    batch = result["mean_batch"]
    return (
        f"{result['rps']:>8.0f} req/s  p50 {result['p50_ms']:6.1f}  p99 {result['p99_ms']:7.1f} ms"
        f"  err {result['errors']:.0f}  batch {batch if batch is None else round(batch, 1)}"
        f"  cpu {result['cpu_pct']:.0f}%  rss {result['rss_mib']:.0f} MiB"
    )


def ensure_litserve(venv: Path, log: Path) -> tuple[Path | None, str]:
    """LitServe's venv, made on first use: (its python, version) or (None, why not)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import litserve, torch; print(litserve.__version__)"]
    if not python.exists():
        print(f"creating {venv} (pip install {' '.join(LITSERVE_PACKAGES)}) ...", flush=True)
        steps = [
            ["python3", "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", *LITSERVE_PACKAGES],
        ]
        with log.open("w") as out:
            for step in steps:
                done = subprocess.run(step, check=False, stdout=out, stderr=subprocess.STDOUT)
                if done.returncode != 0:
                    lines = log.read_text().strip().splitlines() or ["(no output)"]
                    return None, f"`{' '.join(step[:4])} ...` failed: {lines[-1][:200]}"
    found = subprocess.run(probe, check=False, capture_output=True, text=True)
    if found.returncode != 0:
        lines = found.stderr.strip().splitlines() or ["(no output)"]
        return None, f"cannot import litserve in {venv}: {lines[-1][:200]}"
    return python, f"litserve {found.stdout.strip()}"


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores ({model}), {platform.python_version()}"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--warmup", type=float, default=2, help="wrk warm-up per run (default 2)")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="scenarios whose name has TEXT")
    parser.add_argument(
        "--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), help="columns to run"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s, 1 round, 1 s warm-up")
    parser.add_argument(
        "--litserve-batch-timeout",
        type=float,
        default=0.005,
        help="seconds (default 0.005: its best c=64 req/s of 0-0.02 here)",
    )
    parser.add_argument(
        "--device", default="cpu", help="the project's device (cpu; cuda on a GPU machine)"
    )
    parser.add_argument("--out", type=Path, default=RUNS, help="report folder (bench/runs/)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.warmup = 2, 1, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"python -m bench needs {' and '.join(missing)} on PATH")
    scenarios = select(build_scenarios(), args.only, args.systems)
    if not scenarios:
        raise SystemExit("no scenario matches --only / --systems")
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="mlp-serve-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        litserve_version = None
        if any("litserve" in s.targets for s in scenarios):
            log = Path(tmp) / "litserve-pip.log"
            bench.litserve_python, status = ensure_litserve(LITSERVE_VENV, log)
            if bench.litserve_python is None:
                bench.failures["litserve"] = status
                print(f"LitServe: {status}")
            else:
                litserve_version = status
        for number in range(args.rounds):
            print(f"round {number + 1}/{args.rounds}", flush=True)
            bench.run_round(number, scenarios)
    result = collect(args, bench, load_before, litserve_version)
    write(result, args.out)


def collect(
    args: argparse.Namespace, bench: Bench, load_before: str, litserve_version: str | None
) -> dict[str, Any]:
    medians = report.summarise(bench.runs)
    ratios = report.ratios(medians)
    ready_s = {server: report.median_of(times) for server, times in bench.ready.items()}
    return {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "device": args.device,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "noisy": args.seconds < 5 or args.rounds < 2,
        "load_before": load_before,
        "load_after": load_average(),
        "models": {name: latest_version(ROOT / "models" / name) for name in ("iris", "mnist")},
        "litserve_version": litserve_version,
        "litserve_batch_timeout": args.litserve_batch_timeout,
        "medians": medians,
        "ratios": ratios,
        "goals": report.check_goals(medians, ratios, ready_s.get("project")),
        "ready_s": ready_s,
        "failures": bench.failures,
        "runs": bench.runs,
        "ready_runs": bench.ready,
    }


def write(result: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = report.render_markdown(result)
    (folder / "bench.md").write_text(markdown)
    plots = report.plot(result["medians"], folder)
    print(markdown)
    print("wrote", ", ".join(str(p) for p in [folder / "bench.md", folder / "bench.json", *plots]))


if __name__ == "__main__":
    main()
