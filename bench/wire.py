"""The wire types and constant answers the reference servers share.

The Litestar ceiling, the raw ASGI ceiling and the naive server decode the same bodies into the
same msgspec Structs, and the two ceilings answer the same constants, so that what differs
between them is the server around the parsing, not the parsing.
"""

from __future__ import annotations

from typing import Any

import msgspec

IRIS_PREDICTION = {"label": 0, "class_name": "setosa", "probabilities": [0.98, 0.015, 0.005]}
V2_OUTPUT = {"name": "OUTPUT__0", "datatype": "FP32", "shape": [1, 3], "data": [0.98, 0.015, 0.005]}


class V1Request(msgspec.Struct):
    instances: list[list[float]]


class V2Tensor(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class V2Request(msgspec.Struct):
    inputs: list[V2Tensor]


def v1_answer(rows: int) -> dict[str, Any]:
    """The constant iris prediction, once per row decoded."""
    return {"model_name": "iris", "model_version": "1", "predictions": [IRIS_PREDICTION] * rows}


def image_answer(size: int) -> dict[str, Any]:
    """A constant digit, carrying the size of the image read (so a test sees it was read)."""
    prediction = {"filename": None, "label": 7, "class_name": "7", "size": size}
    return {"model_name": "mnist", "model_version": "1", "predictions": [prediction]}


def v2_answer(name: str) -> dict[str, Any]:
    return {"model_name": name, "model_version": "1", "outputs": [V2_OUTPUT]}
