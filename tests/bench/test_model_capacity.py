"""The model-side capacity benchmark, run briefly on the CPU (its GPU figures come from a GPU
machine): every request's rows go through the real batcher of each runtime and come back
with the runtime's own answer."""

from __future__ import annotations

import json
from pathlib import Path

from bench.model_capacity import main


def test_rows_go_through_each_runtimes_batcher_and_the_report_is_written(
    tiny_repo: Path, tmp_path: Path
) -> None:
    main(
        [
            "--models",
            str(tiny_repo),
            "--device",
            "cpu",
            "--rows",
            "256",
            "--concurrency",
            "2",
            "--seconds",
            "0.2",
            "--out",
            str(tmp_path),
        ]
    )
    result = json.loads((tmp_path / "model_capacity.json").read_text())
    assert result["device"] == "cpu"
    assert [run["runtime"] for run in result["runtimes"]] == ["torchscript", "onnxruntime"]
    for run in result["runtimes"]:
        assert run["batcher"]["requests"] >= 2
        assert run["batcher"]["wrong_answers"] == 0
        assert run["batcher"]["rows_per_s"] > 0
        assert 256 <= run["batcher"]["mean_batch"] <= 512  # both clients' requests may share one
        assert set(run["bare_rows_per_s"]) == {"1", "64", "256"}
    assert result["onnxruntime_over_torchscript"] > 0
    report = (tmp_path / "model_capacity.md").read_text()
    assert "| onnxruntime | through the batcher" in report
    assert "ONNX Runtime / TorchScript through the batcher" in report
