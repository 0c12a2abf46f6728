"""Turn the runs of `python -m bench` into medians, ratios, goals, a markdown table and plots.

Pure functions on plain dicts: runs[scenario][system] is a list of per-round results
(`rps`, `p50_ms`, `p99_ms`, `errors`, `mean_batch`, `cpu_pct`, `rss_mib`), ready[server] a list
of start-to-ready times in seconds.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from bench.scenarios import GOALS, SYSTEM_LABELS, SYSTEMS, Goal

Runs = dict[str, dict[str, list[dict[str, float | None]]]]
Medians = dict[str, dict[str, dict[str, float | None]]]
REFERENCES = ("ceiling", "raw", "naive", "litserve")
BATCHING_OFF = "iris JSON c=64, batching off"


def median_of(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def summarise(runs: Runs) -> Medians:
    """Medians over rounds; errors are summed instead, so that no failed request hides."""
    out: Medians = {}
    for scenario, systems in runs.items():
        out[scenario] = {}
        for system, results in systems.items():
            if not results:
                continue
            keys = {key for result in results for key in result}
            out[scenario][system] = {
                key: median_of([r.get(key) for r in results]) for key in sorted(keys)
            }
            out[scenario][system]["errors"] = sum(r.get("errors") or 0 for r in results)
            out[scenario][system]["rounds"] = len(results)
    return out


def ratios(medians: Medians) -> dict[str, dict[str, float | None]]:
    """project req/s over each reference's, per scenario (None where either is missing)."""
    out = {}
    for scenario, systems in medians.items():
        project = (systems.get("project") or {}).get("rps")
        out[scenario] = {}
        for reference in REFERENCES:
            other = (systems.get(reference) or {}).get("rps")
            out[scenario][reference] = project / other if project and other else None
    return out


def check_goals(
    medians: Medians, rps_ratios: dict[str, dict[str, float | None]], ready_s: float | None
) -> list[dict[str, Any]]:
    """Each goal with its measured value and whether it passed (None: not measured)."""
    checked = []
    for goal in GOALS:
        value = measured(goal, medians, rps_ratios, ready_s)
        passed = None
        if value is not None:
            passed = value >= goal.bound if goal.at_least else value <= goal.bound
        checked.append({"goal": goal.label, "value": value, "bound": goal.bound, "pass": passed})
    return checked


def measured(
    goal: Goal,
    medians: Medians,
    rps_ratios: dict[str, dict[str, float | None]],
    ready_s: float | None,
) -> float | None:
    if goal.metric == "ready_s":
        return ready_s
    if goal.metric == "rps_ratio":
        return rps_ratios.get(goal.scenario, {}).get(goal.reference)
    return medians.get(goal.scenario, {}).get("project", {}).get(goal.metric)


# --- markdown -----------------------------------------------------------------------------------


def number(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def cell(text: str) -> str:
    """Text that stays inside one markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: dict[str, Any]) -> str:
    """The report: goals, req/s of every system with ratios, per-system details, start-up."""
    medians: Medians = result["medians"]
    lines = [
        "# mlp-serve against the raw ASGI and framework ceilings, a naive server and LitServe",
        "",
        f"{result['when']}, {result['machine']}. wrk (1 thread) on core 1, each server on "
        f"core 0; {result['seconds']:g} s per run after {result['warmup']:g} s of warm-up, "
        f"{result['rounds']} round(s) alternating the systems, medians. "
        f"Load average before/after: {result['load_before']} / {result['load_after']}. Models: "
        + ", ".join(f"{name} v{version}" for name, version in result["models"].items())
        + ".",
    ]
    if result.get("noisy"):
        lines.append("\n**Short run: figures are noisy** (smoke test, not a measurement to quote).")
    lines += ["", "## Goals", "", "| goal | measured | pass |", "|---|---:|---|"]
    for goal in result["goals"]:
        verdict = {True: "yes", False: "**no**", None: "not measured"}[goal["pass"]]
        lines.append(f"| {goal['goal']} | {number(goal['value'], 2)} | {verdict} |")
    lines += ["", *throughput_table(result), "", *detail_table(medians)]
    lines += ["", "## Start-up", "", "| server | start to ready, s |", "|---|---:|"]
    for server, seconds in result["ready_s"].items():
        lines.append(f"| {server} | {number(seconds, 2)} |")
    if result["failures"]:
        lines += ["", "## Not measured", ""]
        lines += [f"- {what}: {cell(why)}" for what, why in result["failures"].items()]
    lines += ["", *notes(result)]
    return "\n".join(lines) + "\n"


def throughput_table(result: dict[str, Any]) -> list[str]:
    medians, rps_ratios = result["medians"], result["ratios"]
    labels = [SYSTEM_LABELS[s] for s in SYSTEMS]
    refs = [f"/ {SYSTEM_LABELS[s]}" for s in REFERENCES]
    lines = [
        "## Requests per second",
        "",
        f"mlp-serve's req/s divided by each reference's in the last {len(refs)} columns.",
        "",
        "| scenario | " + " | ".join(labels) + " | " + " | ".join(refs) + " |",
        "|---|" + "---:|" * (len(labels) + len(refs)),
    ]
    for scenario, systems in medians.items():
        cells = [number((systems.get(s) or {}).get("rps")) for s in SYSTEMS]
        cells += [number(rps_ratios[scenario][r], 2, "x") for r in REFERENCES]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    for server, why in result["failures"].items():
        if server == "litserve":
            lines.append(
                f"| LitServe: not measured, {cell(why)} |" + " |" * (len(labels) + len(refs) - 1)
            )
    on = medians.get("iris JSON c=64", {}).get("project", {}).get("rps")
    off = medians.get(BATCHING_OFF, {}).get("project", {}).get("rps")
    if on and off:
        lines += ["", f"Batching on / off, iris JSON c=64: {on / off:.2f}x req/s."]
    return lines


def detail_table(medians: Medians) -> list[str]:
    lines = [
        "## Every system",
        "",
        "Errors: non-2xx responses and socket errors, summed over the rounds. Mean batch: rows "
        "over forward passes from the server's counters during the run. CPU: the server's "
        "process tree, % of one core. RSS: its resident memory after the run (VmRSS summed over "
        "its processes: LitServe runs several).",
        "",
        "| scenario | system | req/s | p50 ms | p99 ms | errors | mean batch | CPU % | RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, systems in medians.items():
        for system in SYSTEMS:
            m = systems.get(system)
            if m is None:
                continue
            lines.append(
                f"| {scenario} | {SYSTEM_LABELS[system]} | {number(m.get('rps'))} "
                f"| {number(m.get('p50_ms'), 1)} | {number(m.get('p99_ms'), 1)} "
                f"| {number(m.get('errors'))} | {number(m.get('mean_batch'), 1)} "
                f"| {number(m.get('cpu_pct'))} | {number(m.get('rss_mib'))} |"
            )
    return lines


def notes(result: dict[str, Any]) -> list[str]:
    return [
        "## Systems",
        "",
        f"- **mlp-serve**: `python -m service --models models --device {result['device']}`, "
        "default settings "
        "(JSON request logs and metrics on; `SERVE_DRAIN_DELAY_S=0` only to stop quickly). "
        "Batching off: a copy of models/iris with `max_batch_size: 1`. Its inference handlers "
        "read the body with ASGI `receive()` and answer with a msgspec-encoded bare ASGI "
        "response, where the ceiling uses Litestar's `request.body()` and `Response`: a ratio "
        "above 1 on a part of the path is possible.",
        "- **ceiling** (`bench/ceiling.py`): bare Litestar, same uvicorn options (httptools, "
        "uvloop, one worker, no access log); parses the same body (msgspec JSON, multipart "
        "form + file read, or raw body) and returns a constant prediction.",
        "- **raw ASGI** (`bench/raw_asgi.py`): the limit of a Python server on this stack: a bare "
        "ASGI callable, no framework, on the same uvicorn options; the same routes, the same "
        "msgspec Structs and multipart parsing (the `multipart` library, as the service), the "
        "same constant answers encoded with msgspec. Its ratio is what is left to gain at all; "
        "the ceiling's, what is left to gain inside a framework.",
        "- **naive** (`bench/naive.py`): the same TorchScript models called inline in the "
        "handler per request (inference_mode, 1 thread); images preprocessed inline.",
        f"- **LitServe** (`bench/litserve_app.py`, {result.get('litserve_version') or 'n/a'}): "
        "iris only, its own batching (max_batch_size 64, batch_timeout "
        f"{result['litserve_batch_timeout']:g} s), one inference worker, one API server, "
        "`POST /predict` with the same body.",
    ]


# --- plots --------------------------------------------------------------------------------------


def plot(medians: Medians, folder: Path) -> list[Path]:
    """Horizontal grouped bars per scenario: req/s and p99 latency of every system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in medians if medians[s]]
    paths: list[Path] = []
    if not scenarios:
        return paths
    for metric, title, file in (  # log scales: image uploads run at 1/100 of JSON rows
        ("rps", "requests per second (higher is better, log scale)", "bench_rps.png"),
        ("p99_ms", "p99 latency, ms (lower is better, log scale)", "bench_p99.png"),
    ):
        fig, ax = plt.subplots(figsize=(10, 0.55 * len(scenarios) * 1.6 + 1.5))
        height = 0.8 / len(SYSTEMS)
        for index, system in enumerate(SYSTEMS):
            values = [(medians[s].get(system) or {}).get(metric) for s in scenarios]
            values = [math.nan if v is None else v for v in values]  # no bar
            offset = (index - (len(SYSTEMS) - 1) / 2) * height
            positions = [row + offset for row in range(len(scenarios))]
            ax.barh(positions, values, height, label=SYSTEM_LABELS[system])
        ax.set_yticks(range(len(scenarios)), scenarios)
        ax.invert_yaxis()
        ax.set_xlabel(title)
        ax.set_xscale("log")
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(SYSTEMS), frameon=False)
        fig.tight_layout()
        path = folder / file
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
