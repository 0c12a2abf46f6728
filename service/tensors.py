"""Turn request payloads into validated float32 row blocks, and model outputs into payloads.

Everything a client can get wrong is caught here with a message that says what to fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import msgspec
import numpy as np

from service.cards import ModelCard
from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from service.schemas import (
    FLOAT32_MAX,
    Prediction,
    V1PredictRequest,
    V2InferRequest,
    V2RequestTensor,
)

FINITE_FLOAT32 = f"values must be finite and fit in float32 (|x| <= {FLOAT32_MAX:.4g})"

# Open Inference Protocol datatypes this server accepts, and their little-endian numpy types.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


T = TypeVar("T")


def decode_json(body: bytes, schema: type[T], example: str) -> T:
    """Decode `body` into `schema`; 400 for broken JSON, 422 for JSON of the wrong shape."""
    if not body:
        raise MalformedRequest(f"the request body is empty; send JSON like {example}")
    try:
        return msgspec.json.decode(body, type=schema)
    except msgspec.ValidationError as error:
        if "out of range" in str(error):
            raise MalformedRequest(f"body is not valid JSON: {error}") from None
        if "Expected `float` <=" in str(error) or "Expected `float` >=" in str(error):
            where = str(error).rpartition(" - ")[2]
            raise InvalidInput(f"{FINITE_FLOAT32}; {where}") from None
        raise InvalidInput(f"{error}; send JSON like {example}") from None
    except msgspec.DecodeError as error:
        raise MalformedRequest(
            f"body is not valid JSON ({error}); NaN and Infinity are not JSON numbers"
        ) from None


def check_row_count(count: int, card: ModelCard, max_rows: int) -> None:
    """N in [1, max_rows]: checked on the declared count, before any array is built."""
    if count == 0:
        raise InvalidInput(f"no rows to infer; {card.name} expects at least one")
    if count > max_rows:
        raise PayloadTooLarge(
            f"{count} rows in one request; the limit is {max_rows}, split the request"
        )


def check_finite(rows: np.ndarray) -> np.ndarray:
    """Every value finite once in float32 (too large a number overflows to inf)."""
    if not np.isfinite(rows).all():
        raise InvalidInput(FINITE_FLOAT32)
    return rows


def decode_v1_instances(body: bytes, card: ModelCard, max_rows: int) -> np.ndarray:
    request = decode_json(body, V1PredictRequest, '{"instances": [[...], ...]}')
    instances = request.instances
    check_row_count(len(instances), card, max_rows)
    features = card.input.features
    for index, instance in enumerate(instances):
        if len(instance) != features:
            raise InvalidInput(
                f"{card.name} expects {features} features per instance; "
                f"instance {index} has {len(instance)}"
            )
    # Float32 bounds were checked while decoding: the cast cannot overflow.
    return np.array(instances, dtype=np.float32)


def v1_predictions(card: ModelCard, outputs: np.ndarray) -> list[Prediction]:
    """Model outputs as KServe v1 predictions: label + class name + probabilities, or a value."""
    if card.task == "regression":
        return [Prediction(value=value) for value in outputs[:, 0].tolist()]
    names = card.output.class_names or []
    labels = outputs.argmax(axis=1).tolist()
    return [
        Prediction(
            label=label, class_name=names[label] if names else None, probabilities=probabilities
        )
        for label, probabilities in zip(labels, outputs.tolist(), strict=True)
    ]


@dataclass(frozen=True)
class V2Payload:
    """A decoded v2 request: the input rows and what the client asked of the output."""

    request: V2InferRequest
    rows: np.ndarray
    binary_output: bool


def split_binary_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The binary tensor data extension: a JSON header of `header_length` bytes, then tensors."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise MalformedRequest("Inference-Header-Content-Length must be an integer") from None
    if not 0 < length <= len(body):
        raise MalformedRequest(
            f"Inference-Header-Content-Length {length} does not fit in a body of {len(body)} bytes"
        )
    return body[:length], body[length:]


def decode_v2_request(
    body: bytes, header_length: str | None, card: ModelCard, max_rows: int
) -> V2Payload:
    header, binary = split_binary_body(body, header_length)
    request = decode_json(
        header,
        V2InferRequest,
        '{"inputs": [{"name": "INPUT__0", "shape": [1, N], "datatype": "FP32", "data": [...]}]}',
    )
    if len(request.inputs) != 1 or request.inputs[0].name != card.input.name:
        given = [tensor.name for tensor in request.inputs]
        raise InvalidInput(
            f"{card.name} takes exactly one input named {card.input.name!r}; got {given}"
        )
    tensor = request.inputs[0]
    rows = _v2_rows(tensor, binary, card, max_rows)
    return V2Payload(request, rows, _wants_binary_output(request, card))


def _v2_rows(tensor: V2RequestTensor, binary: bytes, card: ModelCard, max_rows: int) -> np.ndarray:
    dtype = DATATYPES.get(tensor.datatype)
    if dtype is None:
        raise InvalidInput(
            f"datatype {tensor.datatype!r} is not supported; use one of {', '.join(DATATYPES)}"
        )
    features = card.input.features
    if len(tensor.shape) != 2 or tensor.shape[1] != features or tensor.shape[0] < 0:
        raise InvalidInput(f"{card.name} expects shape [N, {features}]; got {tensor.shape}")
    check_row_count(tensor.shape[0], card, max_rows)
    count = math.prod(tensor.shape)
    binary_size = tensor.parameters.get("binary_data_size")
    if binary_size is not None:
        values = _binary_values(binary, binary_size, dtype, count)
    else:
        values = _json_values(tensor, dtype, count)
        if values.dtype == np.float32:  # FP32 JSON: cast and checked finite already
            return values.reshape(tensor.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        rows = values.astype(np.float32, copy=False).reshape(tensor.shape)
    return check_finite(rows)


def _binary_values(binary: bytes, size: object, dtype: np.dtype, count: int) -> np.ndarray:
    if not isinstance(size, int) or size != len(binary):
        raise MalformedRequest(
            f"binary_data_size {size} does not match the {len(binary)} bytes after the JSON header"
        )
    if size != count * dtype.itemsize:
        raise InvalidInput(
            f"binary data has {size} bytes; shape and datatype need {count * dtype.itemsize}"
        )
    return np.frombuffer(binary, dtype=dtype)


def _json_values(tensor: V2RequestTensor, dtype: np.dtype, count: int) -> np.ndarray:
    if tensor.data is None:
        raise InvalidInput(f"input {tensor.name!r} has no data (nor binary_data_size)")
    try:
        values = np.asarray(tensor.data)
    except ValueError:
        raise InvalidInput("data is ragged: nested lists must all have the same length") from None
    if values.size != count:
        raise InvalidInput(f"shape {tensor.shape} needs {count} values; data has {values.size}")
    if values.ndim > 1 and list(values.shape) != tensor.shape:
        raise InvalidInput(f"nested data has shape {list(values.shape)}, not {tensor.shape}")
    return _as_datatype(values, tensor.datatype, dtype).reshape(-1)


def _as_datatype(values: np.ndarray, datatype: str, dtype: np.dtype) -> np.ndarray:
    """JSON values must be of the declared datatype's kind and in its range; floating-point
    ones come back cast to it (integers and booleans as they are)."""
    kind = values.dtype.kind
    if dtype.kind == "b":
        ok = kind == "b"
    elif dtype.kind in "iu":
        ok = kind in "iu" and (
            values.size == 0
            or (
                int(values.min()) >= np.iinfo(dtype).min
                and int(values.max()) <= np.iinfo(dtype).max
            )
        )
    elif kind not in "iuf":
        ok = False
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            values = values.astype(dtype)
        ok = bool(np.isfinite(values).all())
    if not ok:
        raise InvalidInput(f"data does not hold {datatype} values (numbers of that type and range)")
    return values


def _wants_binary_output(request: V2InferRequest, card: ModelCard) -> bool:
    for output in request.outputs or []:
        if output.name != card.output.name:
            raise InvalidInput(
                f"{card.name} has one output, {card.output.name!r}; "
                f"got a request for {output.name!r}"
            )
    flags = [output.parameters.get("binary_data") for output in request.outputs or []]
    if flags and flags[0] is not None:
        return bool(flags[0])
    return bool(request.parameters.get("binary_data_output", False))
