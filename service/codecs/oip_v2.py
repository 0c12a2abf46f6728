"""The Open Inference Protocol v2 (KServe v2 / Triton HTTP) in JSON, with the binary tensor
data extension: a request body in, one float32 row block out; outputs in, the answer out.

Every datatype of the protocol is accepted as input and cast to the model's float32 once it is
known to fit; the answer is the model's FP32 output, as JSON data or binary after the header.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
import numpy as np

from modelrepo.card import ModelSpec
from service.codecs import classification
from service.codecs.answer import Answer, json_answer
from service.codecs.decoding import check_finite, check_row_count, client_errors, decode_json
from service.codecs.schemas import (
    V2InferRequest,
    V2InferResponse,
    V2RequestTensor,
    V2ResponseTensor,
)
from service.errors import InvalidInput, MalformedRequest, UnsupportedMediaType

HEADER_LENGTH = "Inference-Header-Content-Length"
EXAMPLE = '{"inputs": [{"name": "INPUT__0", "shape": [1, N], "datatype": "FP32", "data": [...]}]}'

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


# Read as JSON, as Triton does: tritonclient sends no Content-Type, and `curl -d` always says
# form-urlencoded (a v2 body is never a form).
JSON_MEDIA_TYPES = {"", "application/json", "application/x-www-form-urlencoded"}


def check_media_type(media: str, binary: bool) -> None:
    """JSON under any of JSON_MEDIA_TYPES; binary framing may also say octet-stream."""
    allowed = JSON_MEDIA_TYPES | ({"application/octet-stream"} if binary else set())
    if media not in allowed:
        raise UnsupportedMediaType(
            f"content type {media!r} is not supported; send "
            f"application/json (or the binary tensor data extension)"
        )


@dataclass(frozen=True)
class V2Payload:
    """A decoded v2 request: the input rows, what the client asked of the output, and how long
    the server may take (the request's own `timeout`, capped by the server's)."""

    request: V2InferRequest
    rows: np.ndarray
    binary_output: bool
    timeout_s: float
    class_count: int = 0  # the classification extension's top k (0: the output tensor)


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


@client_errors
def decode_request(
    body: bytes, header_length: str | None, card: ModelSpec, max_rows: int, timeout_s: float
) -> V2Payload:
    """`header_length` is the Inference-Header-Content-Length header (None: all JSON);
    `timeout_s` the server's own request timeout."""
    header, binary = split_binary_body(body, header_length)
    request = decode_json(header, V2InferRequest, EXAMPLE)
    if len(request.inputs) != 1 or request.inputs[0].name != card.input.name:
        given = [tensor.name for tensor in request.inputs]
        raise InvalidInput(
            f"{card.name} takes exactly one input named {card.input.name!r}; got {given}"
        )
    tensor = request.inputs[0]
    rows = _v2_rows(tensor, binary, card, max_rows)
    return V2Payload(
        request,
        rows,
        _wants_binary_output(request, card),
        request_timeout(request, timeout_s),
        _class_count(request, card),
    )


def _v2_rows(tensor: V2RequestTensor, binary: bytes, card: ModelSpec, max_rows: int) -> np.ndarray:
    dtype = tensor_dtype(tensor.datatype)
    count = check_shape(tensor.shape, card, max_rows)
    binary_size = tensor.parameters.get("binary_data_size")
    if binary_size is not None:
        if not isinstance(binary_size, int) or binary_size != len(binary):
            raise MalformedRequest(
                f"binary_data_size {binary_size} does not match the {len(binary)} bytes after "
                "the JSON header"
            )
        values = raw_values(binary, dtype, count)
    else:
        values = _json_values(tensor, dtype, count)
        if values.dtype == np.float32:  # FP32 JSON: cast and checked finite already
            return values.reshape(tensor.shape)
    return float32_rows(values, tensor.shape)


def tensor_dtype(datatype: str) -> np.dtype:
    """The numpy type of an OIP datatype this server accepts as input."""
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(
            f"datatype {datatype!r} is not supported; use one of {', '.join(DATATYPES)}"
        )
    return dtype


def check_shape(shape: list[int], card: ModelSpec, max_rows: int) -> int:
    """[N, features] with N within the row limit; returns the number of values."""
    features = card.input.features
    if len(shape) != 2 or shape[1] != features or shape[0] < 0:
        raise InvalidInput(f"{card.name} expects shape [N, {features}]; got {list(shape)}")
    check_row_count(shape[0], card, max_rows)
    return math.prod(shape)


def raw_values(raw: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    """A tensor's raw little-endian bytes (binary extension, gRPC raw contents)."""
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"binary data has {len(raw)} bytes; shape and datatype need {count * dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype)


def float32_rows(values: np.ndarray, shape: list[int]) -> np.ndarray:
    """Values of any accepted datatype as the model's float32 rows, every one finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        rows = values.astype(np.float32, copy=False).reshape(shape)
    return check_finite(rows)


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
    return as_datatype(values, tensor.datatype, dtype).reshape(-1)


def as_datatype(values: np.ndarray, datatype: str, dtype: np.dtype) -> np.ndarray:
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


def _wants_binary_output(request: V2InferRequest, card: ModelSpec) -> bool:
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


def _class_count(request: V2InferRequest, card: ModelSpec) -> int:
    for output in request.outputs or []:
        if classification.PARAMETER in output.parameters:
            return classification.check_class_count(
                output.parameters[classification.PARAMETER], card
            )
    return 0


def request_timeout(request: V2InferRequest, server_timeout_s: float) -> float:
    """The `timeout` parameter (microseconds, as in Triton), capped by the server's own."""
    timeout_us = request.parameters.get("timeout")
    if timeout_us is None:
        return server_timeout_s
    if not isinstance(timeout_us, int) or isinstance(timeout_us, bool) or timeout_us <= 0:
        raise InvalidInput("parameter 'timeout' must be a positive integer of microseconds")
    return min(server_timeout_s, timeout_us / 1e6)


def encode_answer(card: ModelSpec, payload: V2Payload, outputs: np.ndarray) -> Answer:
    """The output tensor as JSON data, or as raw bytes after the JSON header when asked."""
    if payload.class_count:
        return _classification_answer(card, payload, outputs)
    spec = card.output
    shape = list(outputs.shape)
    if not payload.binary_output:
        tensor = V2ResponseTensor(
            name=spec.name, datatype=spec.datatype, shape=shape, data=outputs.reshape(-1).tolist()
        )
        return json_answer(_response(card, payload, tensor))
    raw = outputs.astype("<f4", copy=False).tobytes()
    tensor = V2ResponseTensor(name=spec.name, datatype=spec.datatype, shape=shape)
    return _binary_answer(card, payload, tensor, raw)


def _classification_answer(card: ModelSpec, payload: V2Payload, outputs: np.ndarray) -> Answer:
    rows = classification.top_classes(card, outputs, payload.class_count)
    shape = [len(rows), payload.class_count]
    name = card.output.name
    if not payload.binary_output:
        flat = [text for row in rows for text in row]
        tensor = V2ResponseTensor(name=name, datatype="BYTES", shape=shape, data=flat)
        return json_answer(_response(card, payload, tensor))
    tensor = V2ResponseTensor(name=name, datatype="BYTES", shape=shape)
    return _binary_answer(card, payload, tensor, classification.serialize_bytes(rows))


def _binary_answer(
    card: ModelSpec, payload: V2Payload, tensor: V2ResponseTensor, raw: bytes
) -> Answer:
    """The binary tensor data extension: the JSON header, then the tensor's raw bytes."""
    tensor.parameters = {"binary_data_size": len(raw)}
    header = msgspec.json.encode(_response(card, payload, tensor))
    return Answer(
        header + raw,
        media_type=b"application/octet-stream",
        headers=((HEADER_LENGTH.lower().encode(), str(len(header)).encode()),),
    )


def _response(card: ModelSpec, payload: V2Payload, tensor: V2ResponseTensor) -> V2InferResponse:
    return V2InferResponse(
        model_name=card.name,
        model_version=str(card.version),
        outputs=[tensor],
        id=payload.request.id,
    )
