"""JSON log lines: the formatter and the once-per-iteration writer of the access log."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from service.logs import BatchedLines, JsonFormatter


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
