"""JSON log lines: the formatter and the once-per-iteration writer of the access log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from service.logs import BatchedLines, JsonFormatter
from tests.conftest import ROOT


class CountingBuffer(io.BytesIO):
    """A binary stream that counts its writes."""

    writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.getvalue().splitlines()]


def test_lines_of_one_loop_iteration_go_out_in_one_write() -> None:
    stream = CountingBuffer()
    lines = BatchedLines(stream)

    async def main() -> None:
        for number in range(50):
            lines.write({"n": number})
        assert stream.writes == 0  # not before the iteration ends
        await asyncio.sleep(0)  # one iteration: the scheduled flush runs
        assert stream.writes == 1
        lines.write({"n": 50})
        await asyncio.sleep(0)

    asyncio.run(main())
    assert stream.writes == 2
    assert [line["n"] for line in stream.lines()] == list(range(51))


def test_lines_outside_a_loop_go_out_at_once() -> None:
    stream = CountingBuffer()
    BatchedLines(stream).write({"message": "start"})
    assert stream.lines() == [{"message": "start"}]


def test_formatter_writes_one_json_object_with_fields() -> None:
    record = logging.LogRecord("service.x", logging.WARNING, "f.py", 1, "hello %s", ("you",), None)
    record.fields = {"model": "iris"}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you"
    assert (line["level"], line["logger"], line["model"]) == ("warning", "service.x", "iris")
    assert line["time"].endswith("Z")


# The app as uvicorn runs it (inside the access log), under `python -m service`'s logging at
# SERVE_LOG_LEVEL, in a process of its own: one request, then a warning of the app's own.
LOGGED_REQUEST = """
import logging, logging.config, sys
from litestar.testing import TestClient
from service.http.access_log import AccessLog
from service.http.app import create_app
from service.logs import logging_config
from service.settings import Settings
logging.config.dictConfig(logging_config(sys.argv[1]))
app = AccessLog(create_app(Settings(models=sys.argv[2], device="cpu")))
with TestClient(app) as client:
    assert client.get("/v2/health/live", headers={"X-Request-ID": "probe-1"}).status_code == 200
logging.getLogger("service").warning("the last line")
"""


@pytest.mark.parametrize(("level", "request_lines"), [("info", 1), ("warning", 0)])
def test_log_level_warning_drops_the_request_lines(
    tmp_path: Path, level: str, request_lines: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOGGED_REQUEST, level, str(tmp_path / "none")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert lines[-1]["message"] == "the last line"
    assert [line.get("request_id") for line in lines].count("probe-1") == request_lines
