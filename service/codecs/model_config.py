"""Triton's ModelConfig in the JSON form its HTTP API answers (`GET .../config`): field names as
in config.pbtxt, and 64-bit integers (dims, delays) as JSON numbers, where protobuf's own JSON
mapping would write strings."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from modelrepo.config import ModelConfig

INT64_FIELDS = frozenset({"dims", "max_queue_delay_microseconds", "shape"})


def model_config_json(config: ModelConfig) -> dict[str, Any]:
    document = json_format.MessageToDict(config, preserving_proto_field_name=True)
    return _numbers(document)


def _numbers(node: Any, field: str = "") -> Any:
    if isinstance(node, dict):
        return {key: _numbers(value, key) for key, value in node.items()}
    if isinstance(node, list):
        return [_numbers(item, field) for item in node]
    if field in INT64_FIELDS and isinstance(node, str):
        return int(node)
    return node
