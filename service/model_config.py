"""Triton's `config.pbtxt`: the per-model settings this server honours.

Only the fields that matter here are read (`max_batch_size`, `dynamic_batching`); the parser
understands the protobuf text format in general (messages, lists, scalars, comments), so a
config written by hand for Triton is read correctly too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<punct>[{}\[\]:,;<>])
      | (?P<word>[A-Za-z0-9_.+\-]+)
    )""",
    re.VERBOSE,
)

Value = str | int | float | bool | dict[str, list["Value"]]


class ConfigSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int
    max_queue_delay_s: float
    preferred_batch_sizes: tuple[int, ...] = ()


def tokenize(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConfigSyntaxError(f"unexpected character at offset {position}")
        position = match.end()
        if match.lastgroup != "comment":
            tokens.append(match.group(match.lastgroup))
    return tokens


def parse_text_proto(text: str) -> dict[str, list[Value]]:
    """Parse protobuf text format into {field: [values]} (every field may repeat)."""
    tokens = tokenize(text)
    message, _ = _parse_message(tokens, 0, closer=None)
    return message


def _parse_message(tokens: list[str], position: int, closer: str | None) -> tuple[dict, int]:
    fields: dict[str, list[Value]] = {}
    while position < len(tokens) and tokens[position] != closer:
        name = tokens[position]
        position += 1
        if position < len(tokens) and tokens[position] == ":":
            position += 1
        values, position = _parse_value(tokens, position)
        fields.setdefault(name, []).extend(values)
        if position < len(tokens) and tokens[position] in (",", ";"):
            position += 1
    if closer is not None:
        if position >= len(tokens):
            raise ConfigSyntaxError(f"missing {closer!r}")
        position += 1
    return fields, position


def _parse_value(tokens: list[str], position: int) -> tuple[list[Value], int]:
    if position >= len(tokens):
        raise ConfigSyntaxError("a field has no value")
    token = tokens[position]
    if token in ("{", "<"):
        message, position = _parse_message(tokens, position + 1, "}" if token == "{" else ">")
        return [message], position
    if token == "[":
        values: list[Value] = []
        position += 1
        while tokens[position] != "]":
            items, position = _parse_value(tokens, position)
            values.extend(items)
            if tokens[position] == ",":
                position += 1
        return values, position + 1
    return [_scalar(token)], position + 1


def _scalar(token: str) -> Value:
    if token[0] in "\"'":
        return token[1:-1]
    if token in ("true", "false"):
        return token == "true"
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return token  # an enum name such as TYPE_FP32


def read_batching_config(
    path: Path, default_max_batch: int, default_delay_s: float
) -> BatchingConfig:
    """Batching settings of one model; the defaults fill whatever the file leaves out."""
    if not path.is_file():
        return BatchingConfig(default_max_batch, default_delay_s)
    config = parse_text_proto(path.read_text())
    max_batch = int(config.get("max_batch_size", [0])[-1]) or default_max_batch
    dynamic = config.get("dynamic_batching", [{}])[-1]
    if not isinstance(dynamic, dict):
        raise ConfigSyntaxError("dynamic_batching must be a message")
    delay_us = dynamic.get("max_queue_delay_microseconds")
    preferred = tuple(int(size) for size in dynamic.get("preferred_batch_size", []))
    delay_s = int(delay_us[-1]) / 1e6 if delay_us else default_delay_s
    return BatchingConfig(max_batch, delay_s, preferred)
