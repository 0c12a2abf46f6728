"""Structured logs: one JSON object per line, for every logger (ours, uvicorn's, Litestar's).

A record's `fields` extra (a dict) is merged into the object, so `log.info("request",
extra={"fields": {...}})` gives machine-readable lines without string formatting.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from functools import lru_cache
from typing import Any, BinaryIO

import msgspec

_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = json_line(record.levelname.lower(), record.name, record.getMessage(), record.created)
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def json_line(level: str, logger: str, message: str, created: float) -> dict[str, Any]:
    """The leading keys of every log line."""
    return {"time": timestamp(created), "level": level, "logger": logger, "message": message}


class Timestamps:
    """ISO 8601 UTC to the millisecond, formatted once per millisecond: under load, several
    request lines share each one, and formatting was a third of building the line."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = (-1, "")  # (milliseconds, text): one tuple, read and replaced whole

    def __call__(self, created: float) -> str:
        ms = int(created * 1000)
        last = self.last
        if last[0] == ms:
            return last[1]
        text = f"{_second(int(created))}.{int(created % 1 * 1000):03d}Z"
        self.last = (ms, text)
        return text


timestamp = Timestamps()


@lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class BatchedLines:
    """JSON lines to stderr, written once per event-loop iteration rather than once each.

    A write per line made every request pay a syscall, and the batch worker thread took the
    GIL at each one (the access log cost a large share of the throughput). Lines written
    outside an event loop go out at once; whatever is buffered goes out at exit too.
    """

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream  # None: whatever sys.stderr is when the lines go out
        self._lines: list[bytes] = []
        atexit.register(self.flush)

    def write(self, line: dict[str, Any] | msgspec.Struct) -> None:
        self._lines.append(_encoder.encode(line))
        if len(self._lines) > 1:
            return  # a flush is already scheduled
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        stream = self.stream or sys.stderr.buffer
        stream.write(b"\n".join(lines) + b"\n")
        stream.flush()


def logging_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` (also uvicorn's `log_config`): JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "level": level.upper(), "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar")
        },
    }
