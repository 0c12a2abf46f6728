"""Single-row iris requests at high concurrency, with dynamic batching on and off.

    python -m bench.serve_batching [--connections 64] [--seconds 10] [--rounds 3]

Starts the real server (`python -m service`) pinned to core 0 and wrk pinned to core 1, on a
copy of the bundled iris model whose config.pbtxt has batching on (as shipped) or off
(max_batch_size 1). Reports req/s, latency percentiles, mean batch size (rows / forward passes,
from the server's own counters) and the time from process start to ready. Rounds alternate
the two configurations; medians are reported. Writes serve_batching.{md,json} to --out
(bench/runs/).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.harness import ROOT, load_arguments, run_wrk, serve_command, start_server

BODY = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
LUA = f"""wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


def make_repo(root: Path, batching: bool) -> Path:
    repo = root / ("batching-on" if batching else "batching-off")
    shutil.copytree(ROOT / "models" / "iris", repo / "iris")
    if not batching:
        config = repo / "iris" / "config.pbtxt"
        config.write_text(re.sub(r"max_batch_size: \d+", "max_batch_size: 1", config.read_text()))
    return repo


def measure(repo: Path, args: argparse.Namespace, script: Path) -> dict[str, float]:
    env = {"SERVE_DRAIN_DELAY_S": "0"}  # as the main bench runs it (access log on)
    server = start_server(serve_command(repo), repo.parent / "server.log", env)
    url = f"{server.base_url}/v1/models/iris:predict"
    try:
        run_wrk(url, script, args.connections, 2)  # warm the connection pool and caches
        rows0, batches0 = server.counters("iris")
        result = run_wrk(url, script, args.connections, args.seconds)
        rows1, batches1 = server.counters("iris")
    finally:
        server.stop()
    result["mean_batch"] = (rows1 - rows0) / max(1, batches1 - batches0)
    result["ready_s"] = server.ready_s
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return load_arguments("python -m bench.serve_batching", __doc__, 64).parse_args(argv)


def main() -> None:
    args = parse_args()
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
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_batching.json").write_text(
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
    (args.out / "serve_batching.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
