"""What a codec hands back to its transport: the answer's bytes, media type and headers."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

Header = tuple[bytes, bytes]
JSON = b"application/json"

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    media_type: bytes = JSON
    headers: tuple[Header, ...] = ()


def json_answer(content: object) -> Answer:
    """`content` (structs, lists, dicts) encoded once, with msgspec."""
    return Answer(_encoder.encode(content))
