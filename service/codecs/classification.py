"""Triton's classification extension: instead of the output tensor, the top k classes of each
row as BYTES strings `"score:index:label"` (`"score:index"` for a model without class names),
highest first, shape [N, k]. Asked per output: `parameters: {"classification": k}` over HTTP,
`class_count` in tritonclient (the same parameter over gRPC)."""

from __future__ import annotations

import struct

import numpy as np

from modelrepo.card import ModelSpec
from service.errors import InvalidInput

PARAMETER = "classification"


def check_class_count(count: object, card: ModelSpec) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InvalidInput(f"parameter {PARAMETER!r} must be a positive integer (the top k)")
    if count > card.output.width:
        raise InvalidInput(
            f"{card.name} has {card.output.width} classes; {PARAMETER!r} asked for the top {count}"
        )
    return count


def top_classes(card: ModelSpec, outputs: np.ndarray, count: int) -> list[list[str]]:
    """Each row's `count` highest scores, as Triton writes them (six decimals, as C++'s
    std::to_string)."""
    order = np.argsort(-outputs, axis=1, kind="stable")[:, :count]
    names = card.output.class_names
    rows = []
    for scores, indices in zip(outputs.tolist(), order.tolist(), strict=True):
        rows.append(
            [f"{scores[i]:f}:{i}:{names[i]}" if names else f"{scores[i]:f}:{i}" for i in indices]
        )
    return rows


def serialize_bytes(rows: list[list[str]]) -> bytes:
    """A BYTES tensor's raw form (binary extension, gRPC raw contents): each element as a
    4-byte little-endian length and its bytes, row after row."""
    parts = []
    for row in rows:
        for text in row:
            data = text.encode()
            parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)
