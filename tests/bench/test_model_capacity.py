"""The model-side capacity benchmark, run briefly on the CPU (its GPU figures come from a GPU
machine): every request's rows go through the real batcher and come back."""

from __future__ import annotations

import json
from pathlib import Path

from bench.model_capacity import main


def test_rows_go_through_the_batcher_and_the_report_is_written(
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
    assert result["batcher"]["rows_per_s"] > 0
    assert 256 <= result["batcher"]["mean_batch"] <= 512  # both clients' requests may share one
    assert set(result["bare_rows_per_s"]) == {"1", "64", "256"}
    assert "through the batcher" in (tmp_path / "model_capacity.md").read_text()
