"""The benchmark's pure pieces: wrk's report, /proc readings, bodies, the ceiling's parsing,
scenario selection and the report. No load is run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient

from bench import report
from bench.__main__ import REFERENCE_MODULES, SERVERS, ensure_litserve
from bench.bodies import IRIS_ROW, multipart_body, v1_json, v2_json
from bench.ceiling import create_app
from bench.harness import cpu_seconds, parse_wrk, process_tree, resident_bytes
from bench.scenarios import GOALS, SYSTEMS, Target, build_scenarios, select
from bench.serve_batching import make_repo

IMAGE = b"\x89PNG\r\n--not-a-boundary"
WRK_REPORT = """\
Running 2s test @ http://127.0.0.1:8000/v1/models/iris:predict
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.12ms    1.20ms  30.50ms   90.00%
    Req/Sec     7.00k   300.00     7.50k    80.00%
  Latency Distribution
     50%  {p50}
     75%    9.50ms
     90%   10.20ms
     99%  {p99}
  14000 requests in 2.00s, 3.00MB read
{errors}Requests/sec:   6998.51
Transfer/sec:      1.50MB
"""


@pytest.mark.parametrize(
    ("p50", "p99", "errors", "expected"),
    [
        ("8.90ms", "13.20ms", "", (8.9, 13.2, 0.0)),
        ("950.00us", "1.20s", "", (0.95, 1200.0, 0.0)),
        (
            "8.90ms",
            "13.20ms",
            "  Socket errors: connect 0, read 2, write 1, timeout 4\n"
            "  Non-2xx or 3xx responses: 5\n",
            (8.9, 13.2, 12.0),
        ),
    ],
)
def test_parse_wrk_reads_rate_percentiles_and_errors(
    p50: str, p99: str, errors: str, expected: tuple[float, float, float]
) -> None:
    result = parse_wrk(WRK_REPORT.format(p50=p50, p99=p99, errors=errors))
    assert result["rps"] == 6998.51
    assert (result["p50_ms"], result["p99_ms"], result["errors"]) == pytest.approx(expected)


def test_parse_wrk_rejects_other_output() -> None:
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_process_readings_cover_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_tree(os.getpid())
        assert child.pid in tree
        assert cpu_seconds(tree) > 0
        assert resident_bytes(tree) > resident_bytes(tree[:1]) > 1 << 20
    finally:
        child.kill()
        child.wait()


def test_multipart_body_is_one_file_part() -> None:
    body, content_type = multipart_body(b"\x89PNG\r\n--x", "digit.png", "image/png")
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode())
    assert body.endswith(f"\r\n--{boundary}--\r\n".encode())
    assert b'name="file"; filename="digit.png"\r\nContent-Type: image/png\r\n\r\n' in body


@pytest.mark.parametrize(
    ("path", "body", "content_type", "check"),
    [
        ("/v1/models/iris:predict", v1_json([IRIS_ROW]), "application/json", "predictions"),
        ("/v2/models/iris/infer", v2_json([IRIS_ROW]), "application/json", "outputs"),
        ("/v1/models/mnist:predict-image", IMAGE, "image/png", "size"),
        ("/v1/models/mnist:predict-image", *multipart_body(IMAGE, "a.png", "image/png"), "size"),
    ],
    ids=["v1 JSON", "v2 JSON", "raw image", "multipart image"],
)
def test_ceiling_parses_every_body(path: str, body: bytes, content_type: str, check: str) -> None:
    with TestClient(create_app()) as client:
        response = client.post(path, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    answer = response.json()
    if check == "size":  # the image's bytes were read, not just the request's
        assert answer["predictions"][0]["size"] == len(IMAGE)
    else:
        assert answer[check]


def test_ceiling_rejects_a_malformed_body() -> None:
    with TestClient(create_app()) as client:
        response = client.post("/v1/models/iris:predict", content=b'{"instances": "x"}')
    assert response.status_code >= 400


def test_every_target_is_a_server_the_bench_starts() -> None:
    servers = {t.server for s in build_scenarios() for t in s.targets.values()}
    assert servers <= set(SERVERS)
    assert REFERENCE_MODULES["raw"] == "bench.raw_asgi"
    raw = select(build_scenarios(), ["mnist JSON"], ["raw"])
    assert [(s.name, s.targets) for s in raw] == [
        ("mnist JSON c=64", {"raw": Target("raw", "/v1/models/mnist:predict", "mnist-v1")})
    ]


def test_every_goal_names_a_measured_scenario_and_reference() -> None:
    names = {s.name for s in build_scenarios()}
    for goal in GOALS:
        assert goal.scenario in names or goal.metric == "ready_s", goal.label
        assert goal.metric != "rps_ratio" or goal.reference in report.REFERENCES, goal.label
    assert {g.reference for g in GOALS if g.metric == "rps_ratio"} == {"ceiling", "raw"}


def test_unbatched_repo_turns_batching_off(tmp_path: Path) -> None:
    config = (make_repo(tmp_path, batching=False) / "iris" / "config.pbtxt").read_text()
    assert "max_batch_size: 1\n" in config


def test_select_by_name_and_system() -> None:
    scenarios = build_scenarios()
    assert select(scenarios, None, list(SYSTEMS)) == scenarios
    chosen = select(scenarios, ["iris json c=64"], ["project", "litserve"])
    assert [s.name for s in chosen] == ["iris JSON c=64", "iris JSON c=64, batching off"]
    assert set(chosen[0].targets) == {"project", "litserve"}
    assert select(scenarios, ["multipart"], ["litserve"]) == []


def run(rps: float, p99: float, batch: float | None = None, errors: float = 0) -> dict:
    return {"rps": rps, "p50_ms": p99 / 2, "p99_ms": p99, "errors": errors, "mean_batch": batch}


RUNS = {
    "iris JSON c=64": {
        "project": [run(7000, 13, 30), run(6000, 15, 28), run(6500, 30, 29, errors=2)],
        "ceiling": [run(8000, 10), run(8200, 11), run(7800, 9)],
        "raw": [run(13000, 5), run(12500, 6), run(14000, 5)],
        "naive": [run(3000, 30, 1), run(3100, 31, 1), run(2900, 29, 1)],
    },
    "iris JSON c=64, batching off": {"project": [run(3250, 25, 1)]},
}


def test_summary_takes_medians_sums_errors_and_checks_goals() -> None:
    medians = report.summarise(RUNS)
    project = medians["iris JSON c=64"]["project"]
    assert (project["rps"], project["p99_ms"], project["mean_batch"]) == (6500, 15, 29)
    assert project["errors"] == 2
    ratios = report.ratios(medians)
    assert ratios["iris JSON c=64"]["ceiling"] == pytest.approx(6500 / 8000)
    assert ratios["iris JSON c=64"]["raw"] == pytest.approx(6500 / 13000)
    assert ratios["iris JSON c=64"]["litserve"] is None
    goals = {g["goal"]: g for g in report.check_goals(medians, ratios, ready_s=2.3)}
    assert goals["iris JSON c=64 >= 0.8 x ceiling req/s"]["pass"] is True
    assert goals["iris JSON c=64 >= 0.5 x raw ASGI req/s"]["value"] == pytest.approx(0.5)
    assert goals["iris JSON c=64 >= 0.5 x raw ASGI req/s"]["pass"] is True
    assert goals["iris JSON c=1 >= 0.5 x raw ASGI req/s"]["pass"] is None
    assert goals["iris JSON c=64 p99 <= 8 ms"]["pass"] is False
    assert goals["PNG 28x28 multipart c=64 >= 0.5 x multipart ceiling"]["pass"] is None
    assert goals["time to ready <= 5 s"]["pass"] is True


def test_markdown_lists_systems_ratios_and_what_was_not_measured(tmp_path: Path) -> None:
    medians = report.summarise(RUNS)
    ratios = report.ratios(medians)
    result = {
        "when": "2026-01-01 00:00",
        "machine": "2 cores",
        "device": "cuda",
        "seconds": 2,
        "warmup": 1,
        "rounds": 1,
        "noisy": True,
        "load_before": "0.1",
        "load_after": "0.2",
        "models": {"iris": "1"},
        "litserve_version": None,
        "litserve_batch_timeout": 0.005,
        "medians": medians,
        "ratios": ratios,
        "goals": report.check_goals(medians, ratios, 2.3),
        "ready_s": {"project": 2.3},
        "failures": {"litserve": "exited: ValueError | pip failed"},
    }
    markdown = report.render_markdown(result)
    assert (
        "| mlp-serve | ceiling | raw ASGI | naive | LitServe | / ceiling | / raw ASGI |" in markdown
    )
    row = "| iris JSON c=64 | 6,500 | 8,000 | 13,000 | 3,000 | - | 0.81x | 0.50x | 2.17x | - |"
    assert row in markdown
    assert "| iris JSON c=64 >= 0.5 x raw ASGI req/s | 0.50 | yes |" in markdown
    assert "| iris JSON c=64 p99 <= 8 ms | 15.00 | **no** |" in markdown
    assert "| iris JSON c=64 | raw ASGI | 13,000 |" in markdown
    assert "**raw ASGI** (`bench/raw_asgi.py`)" in markdown
    assert "LitServe: not measured, exited: ValueError \\| pip failed |" in markdown
    assert "Batching on / off, iris JSON c=64: 2.00x req/s." in markdown
    assert "noisy" in markdown
    assert "`python -m service --models models --device cuda`" in markdown
    json.dumps(result)  # the same dict is written as bench.json
    assert [p.name for p in report.plot(medians, tmp_path)] == ["bench_rps.png", "bench_p99.png"]


def test_naive_server_answers_like_the_service() -> None:
    from bench.naive import create_app as create_naive_app

    with TestClient(create_naive_app()) as client:
        answer = client.post("/v1/models/iris:predict", content=v1_json([IRIS_ROW])).json()
        status = client.get("/v1/models/iris").json()
    assert answer["predictions"][0]["class_name"] == "setosa"
    assert answer["model_version"] == status["default_version"]
    assert status["stats"][status["default_version"]] == {"rows_inferred": 1, "batches": 1}


def test_a_broken_litserve_venv_is_reported_not_raised(tmp_path: Path) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho \"No module named 'litserve'\" >&2\nexit 1\n")
    python.chmod(0o755)
    found, why = ensure_litserve(tmp_path / "venv", tmp_path / "pip.log")
    assert found is None
    assert "No module named 'litserve'" in why
