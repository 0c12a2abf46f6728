"""Triton's gRPC inference messages: a `ModelInferRequest` into one float32 row block, the
model's outputs into a `ModelInferResponse` (raw little-endian contents, which is what
tritonclient reads).

The datatypes, shapes and values are checked exactly as for OIP v2 over HTTP
(`service.codecs.oip_v2`), with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import service_pb2

from modelrepo.card import ModelSpec
from service.codecs import classification
from service.codecs.decoding import client_errors
from service.codecs.oip_v2 import (
    as_datatype,
    check_shape,
    float32_rows,
    raw_values,
    tensor_dtype,
)
from service.errors import InvalidInput

# Typed contents: the field of InferTensorContents that carries each datatype (FP16 has none:
# it travels as raw contents only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


@dataclass(frozen=True)
class GrpcPayload:
    rows: np.ndarray
    timeout_s: float
    class_count: int = 0  # the classification extension's top k (0: the output tensor)


@client_errors
def decode_request(
    request: service_pb2.ModelInferRequest, card: ModelSpec, max_rows: int, timeout_s: float
) -> GrpcPayload:
    """`timeout_s` is the server's own request timeout; a `timeout` parameter (microseconds,
    as in Triton) may ask for less."""
    if len(request.inputs) != 1 or request.inputs[0].name != card.input.name:
        given = [tensor.name for tensor in request.inputs]
        raise InvalidInput(
            f"{card.name} takes exactly one input named {card.input.name!r}; got {given}"
        )
    class_count = 0
    for output in request.outputs:
        if output.name != card.output.name:
            raise InvalidInput(
                f"{card.name} has one output, {card.output.name!r}; "
                f"got a request for {output.name!r}"
            )
        if classification.PARAMETER in output.parameters:
            asked = output.parameters[classification.PARAMETER].int64_param
            class_count = classification.check_class_count(asked, card)
    tensor = request.inputs[0]
    dtype = tensor_dtype(tensor.datatype)
    shape = list(tensor.shape)
    count = check_shape(shape, card, max_rows)
    if request.raw_input_contents:
        values = raw_values(request.raw_input_contents[0], dtype, count)
    else:
        values = typed_values(tensor, dtype, count)
    rows = float32_rows(values, shape)
    return GrpcPayload(rows, request_timeout(request, timeout_s), class_count)


def typed_values(
    tensor: service_pb2.ModelInferRequest.InferInputTensor, dtype: np.dtype, count: int
) -> np.ndarray:
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise InvalidInput(f"{tensor.datatype} inputs travel as raw_input_contents only")
    values = np.asarray(getattr(tensor.contents, field))
    if values.size != count:
        raise InvalidInput(f"shape {list(tensor.shape)} needs {count} values; got {values.size}")
    return as_datatype(values, tensor.datatype, dtype)


def request_timeout(request: service_pb2.ModelInferRequest, server_timeout_s: float) -> float:
    if "timeout" not in request.parameters:
        return server_timeout_s
    timeout_us = request.parameters["timeout"].int64_param
    if timeout_us <= 0:
        raise InvalidInput("parameter 'timeout' must be a positive integer of microseconds")
    return min(server_timeout_s, timeout_us / 1e6)


def encode_response(
    card: ModelSpec,
    request: service_pb2.ModelInferRequest,
    payload: GrpcPayload,
    outputs: np.ndarray,
) -> service_pb2.ModelInferResponse:
    """The output tensor as raw FP32, or the top k classes as a raw BYTES tensor."""
    if payload.class_count:
        rows = classification.top_classes(card, outputs, payload.class_count)
        datatype, shape = "BYTES", [len(rows), payload.class_count]
        raw = classification.serialize_bytes(rows)
    else:
        datatype, shape = card.output.datatype, list(outputs.shape)
        raw = outputs.astype("<f4", copy=False).tobytes()
    tensor = service_pb2.ModelInferResponse.InferOutputTensor(
        name=card.output.name, datatype=datatype, shape=shape
    )
    return service_pb2.ModelInferResponse(
        model_name=card.name,
        model_version=str(card.version),
        id=request.id,
        outputs=[tensor],
        raw_output_contents=[raw],
    )
