"""The OIP v2 codec on its own: every datatype in, the binary extension both ways, each bad
request's exact message, the timeout and classification parameters; no server."""

from __future__ import annotations

import json
import struct

import msgspec
import numpy as np
import pytest

from modelrepo.card import ModelCard
from service.codecs import oip_v2
from service.codecs.decoding import FINITE_FLOAT32
from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from tests.conftest import MODELS_DIR

ROW = [5.1, 3.5, 1.4, 0.2]


def card(name: str) -> ModelCard:
    return ModelCard.model_validate_json((MODELS_DIR / name / "1" / "card.json").read_text())


IRIS, REGRESSION = card("iris"), card("regression")


def v2(**tensor: object) -> dict:
    base = {"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": ROW}
    return {"inputs": [{**base, **tensor}]}


def decode(
    request: dict, binary: bytes = b"", max_rows: int = 8, timeout_s: float = 30.0
) -> oip_v2.V2Payload:
    header = json.dumps(request).encode()
    length = str(len(header)) if binary else None
    return oip_v2.decode_request(header + binary, length, IRIS, max_rows, timeout_s)


@pytest.mark.parametrize(
    ("media", "binary"),
    [("application/json", True), ("application/x-www-form-urlencoded", True), ("", True)],
)
def test_json_media_types_are_json_with_or_without_binary_framing(media: str, binary: bool) -> None:
    oip_v2.check_media_type(media, binary)


def test_the_415_says_what_to_send() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        oip_v2.check_media_type("text/csv", binary=True)
    assert str(caught.value) == (
        "content type 'text/csv' is not supported; send application/json "
        "(or the binary tensor data extension)"
    )


# --- every datatype, as JSON and as raw bytes ---------------------------------------------------


@pytest.mark.parametrize("datatype", list(oip_v2.DATATYPES))
def test_every_datatype_is_read_as_json_and_as_binary(datatype: str) -> None:
    dtype = oip_v2.DATATYPES[datatype]
    values = [True, False, True, True] if datatype == "BOOL" else [0, 1, 2, 100]
    expected = np.array(values, np.float32).reshape(1, 4)
    rows = decode(v2(datatype=datatype, data=values)).rows
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, expected)
    raw = np.array(values, dtype).tobytes()
    tensor = v2(datatype=datatype, data=None, parameters={"binary_data_size": len(raw)})
    rows = decode(tensor, raw).rows
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, expected)


def test_the_datatypes_are_little_endian() -> None:
    assert all(dtype.byteorder in "<|=" for dtype in oip_v2.DATATYPES.values())
    raw = struct.pack("<4i", 1, 2, 3, 256)
    tensor = v2(datatype="INT32", data=None, parameters={"binary_data_size": 16})
    assert decode(tensor, raw).rows.tolist() == [[1, 2, 3, 256]]


def test_nested_json_data_of_the_declared_shape_is_read() -> None:
    rows = decode(v2(shape=[2, 4], data=[ROW, [1, 2, 3, 4]])).rows
    np.testing.assert_array_equal(rows, np.array([ROW, [1, 2, 3, 4]], np.float32))


def test_integer_limits_of_each_type_are_accepted_and_one_beyond_is_not() -> None:
    for datatype, dtype in oip_v2.DATATYPES.items():
        if dtype.kind not in "iu":
            continue
        info = np.iinfo(dtype)
        # numpy reads a JSON list with a UINT64 above INT64's max as float64: refused (known)
        top = min(int(info.max), int(np.iinfo(np.int64).max))
        decode(v2(datatype=datatype, data=[int(info.min), top, 0, 1]))
        for beyond in (int(info.min) - 1, int(info.max) + 1):
            with pytest.raises(InvalidInput, match=f"^data does not hold {datatype} values"):
                decode(v2(datatype=datatype, data=[beyond, 0, 0, 0]))


def test_an_empty_batch_is_no_rows() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode(v2(shape=[0, 4], data=[], datatype="INT32"))
    assert str(caught.value) == "no rows to infer; iris expects at least one"


# --- bad requests, each with its exact message -------------------------------------------------

BAD = [
    (v2(name="x"), InvalidInput, "iris takes exactly one input named 'INPUT__0'; got ['x']"),
    (
        {"inputs": v2()["inputs"] * 2},
        InvalidInput,
        "iris takes exactly one input named 'INPUT__0'; got ['INPUT__0', 'INPUT__0']",
    ),
    ({"inputs": []}, InvalidInput, "iris takes exactly one input named 'INPUT__0'; got []"),
    (v2(shape=[1, 3], data=ROW[:3]), InvalidInput, "iris expects shape [N, 4]; got [1, 3]"),
    (v2(shape=[4]), InvalidInput, "iris expects shape [N, 4]; got [4]"),
    (v2(shape=[1, 4, 1]), InvalidInput, "iris expects shape [N, 4]; got [1, 4, 1]"),
    (v2(shape=[-1, 4]), InvalidInput, "iris expects shape [N, 4]; got [-1, 4]"),
    (
        v2(shape=[9, 4], data=ROW * 9),
        PayloadTooLarge,
        "9 rows in one request; the limit is 8, split the request",
    ),
    (v2(shape=[2, 4]), InvalidInput, "shape [2, 4] needs 8 values; data has 4"),
    (
        v2(shape=[2, 4], data=[[1, 2], [3, 4], [5, 6], [7, 8]]),
        InvalidInput,
        "nested data has shape [4, 2], not [2, 4]",
    ),
    (
        v2(shape=[2, 4], data=[[1, 2, 3, 4], [1, 2, 3]]),
        InvalidInput,
        "data is ragged: nested lists must all have the same length",
    ),
    (
        v2(datatype="BYTES"),
        InvalidInput,
        "datatype 'BYTES' is not supported; use one of BOOL, UINT8, UINT16, UINT32, UINT64, "
        "INT8, INT16, INT32, INT64, FP16, FP32, FP64",
    ),
    (v2(data=["a", "b", "c", "d"]), InvalidInput, "does not hold FP32"),
    (v2(data=[True, False, True, False]), InvalidInput, "does not hold FP32"),
    (v2(datatype="BOOL", data=[1, 0, 1, 0]), InvalidInput, "does not hold BOOL"),
    (v2(datatype="INT8", data=[1, 2, 3, 300]), InvalidInput, "does not hold INT8"),
    (v2(datatype="INT32", data=ROW), InvalidInput, "does not hold INT32"),
    (v2(datatype="UINT8", data=[True, False, True, True]), InvalidInput, "does not hold UINT8"),
    (v2(data=None), InvalidInput, "input 'INPUT__0' has no data (nor binary_data_size)"),
    (v2(datatype="FP16", data=[1, 2, 3, 70000]), InvalidInput, "does not hold FP16"),
    (v2(data=[1, 2, 3, 1e39]), InvalidInput, "does not hold FP32"),
    (v2(datatype="FP64", data=[1, 2, 3, 1e39]), InvalidInput, FINITE_FLOAT32),
    (
        {**v2(), "outputs": [{"name": "PROBS"}]},
        InvalidInput,
        "iris has one output, 'OUTPUT__0'; got a request for 'PROBS'",
    ),
    (
        {**v2(), "outputs": [{"name": "OUTPUT__0"}, {"name": "PROBS"}]},
        InvalidInput,
        "iris has one output, 'OUTPUT__0'; got a request for 'PROBS'",
    ),
]
BAD_TIMEOUTS = [{"timeout": value} for value in ("soon", 0, -5, True, 1.5)]


def message(text: str) -> str:
    """The full message, or where `text` is only its middle, the datatype error's wording."""
    if text.startswith("does not hold"):
        return f"data {text} values (numbers of that type and range)"
    return text


@pytest.mark.parametrize(("request_body", "error", "text"), BAD)
def test_a_bad_request_gets_a_message_that_says_what_to_fix(
    request_body: dict, error: type[Exception], text: str
) -> None:
    with pytest.raises(error) as caught:
        decode(request_body)
    assert str(caught.value) == message(text)


@pytest.mark.parametrize("parameters", BAD_TIMEOUTS)
def test_the_timeout_must_be_positive_microseconds(parameters: dict) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode({**v2(), "parameters": parameters})
    assert str(caught.value) == "parameter 'timeout' must be a positive integer of microseconds"


def test_the_timeout_is_microseconds_capped_by_the_servers() -> None:
    assert decode(v2()).timeout_s == 30.0
    assert decode({**v2(), "parameters": {"timeout": 1}}).timeout_s == 1e-6
    assert decode({**v2(), "parameters": {"timeout": 29_000_000}}).timeout_s == 29.0
    assert decode({**v2(), "parameters": {"timeout": 31_000_000}}).timeout_s == 30.0


@pytest.mark.parametrize(
    ("header_length", "text"),
    [
        ("abc", "Inference-Header-Content-Length must be an integer"),
        ("1.5", "Inference-Header-Content-Length must be an integer"),
        ("0", "Inference-Header-Content-Length 0 does not fit in a body of 2 bytes"),
        ("-1", "Inference-Header-Content-Length -1 does not fit in a body of 2 bytes"),
        ("3", "Inference-Header-Content-Length 3 does not fit in a body of 2 bytes"),
    ],
)
def test_binary_framing_that_does_not_fit_is_malformed(header_length: str, text: str) -> None:
    with pytest.raises(MalformedRequest) as caught:
        oip_v2.decode_request(b"{}", header_length, IRIS, 8, 30.0)
    assert str(caught.value) == text


def test_a_header_as_long_as_the_body_is_all_json() -> None:
    assert oip_v2.split_binary_body(b"{}", "2") == (b"{}", b"")
    assert oip_v2.split_binary_body(b"{}", "1") == (b"{", b"}")
    assert oip_v2.split_binary_body(b"{}xy", "2") == (b"{}", b"xy")
    assert oip_v2.split_binary_body(b"{}xy", None) == (b"{}xy", b"")
    body = json.dumps(v2()).encode()
    payload = oip_v2.decode_request(body, str(len(body)), IRIS, 8, 30.0)
    np.testing.assert_array_equal(payload.rows, np.array([ROW], np.float32))


@pytest.mark.parametrize(
    ("declared", "sent", "error", "text"),
    [
        (
            16,
            12,
            MalformedRequest,
            "binary_data_size 16 does not match the 12 bytes after the JSON header",
        ),
        (
            "16",
            16,
            MalformedRequest,
            "binary_data_size 16 does not match the 16 bytes after the JSON header",
        ),
        (12, 12, InvalidInput, "binary data has 12 bytes; shape and datatype need 16"),
    ],
)
def test_binary_data_must_be_what_the_header_declares(
    declared: object, sent: int, error: type[Exception], text: str
) -> None:
    tensor = v2(data=None, parameters={"binary_data_size": declared})
    with pytest.raises(error) as caught:
        decode(tensor, b"\0" * sent)
    assert str(caught.value) == text


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_binary_values_beyond_float32_are_refused() -> None:
    raw = np.array([1, 2, 3, 1e39], "<f8").tobytes()
    with pytest.raises(InvalidInput) as caught:
        decode(v2(datatype="FP64", data=None, parameters={"binary_data_size": 32}), raw)
    assert str(caught.value) == FINITE_FLOAT32


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_clients_overflow_is_refused_without_a_numpy_warning() -> None:
    """A value beyond the datatype is the client's mistake, answered once, not a RuntimeWarning
    in the server's log (under `error`, a warning would be raised in its place)."""
    for datatype, value in (("FP16", 70000.0), ("FP32", 1e39)):
        with pytest.raises(InvalidInput, match=f"^data does not hold {datatype} values"):
            decode(v2(datatype=datatype, data=[1.0, 2.0, 3.0, value]))


def test_as_datatype_checks_the_range_of_every_integer_even_a_lone_one() -> None:
    int8 = oip_v2.DATATYPES["INT8"]
    empty = oip_v2.as_datatype(np.array([], np.int64), "INT8", int8)
    assert empty.size == 0
    assert oip_v2.as_datatype(np.array([-128]), "INT8", int8).tolist() == [-128]
    with pytest.raises(InvalidInput, match=r"^data does not hold INT8 values"):
        oip_v2.as_datatype(np.array([300]), "INT8", int8)


# --- what the client asked of the output --------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "binary"),
    [
        ({}, False),
        ({"parameters": {"binary_data_output": True}}, True),
        ({"parameters": {"binary_data_output": False}}, False),
        ({"outputs": [{"name": "OUTPUT__0", "parameters": {"binary_data": True}}]}, True),
        ({"outputs": [{"name": "OUTPUT__0", "parameters": {"binary_data": False}}]}, False),
        (
            {
                "outputs": [{"name": "OUTPUT__0", "parameters": {"binary_data": False}}],
                "parameters": {"binary_data_output": True},
            },
            False,
        ),
        (
            {"outputs": [{"name": "OUTPUT__0"}], "parameters": {"binary_data_output": True}},
            True,
        ),
    ],
)
def test_binary_output_per_output_first_then_for_the_request(extra: dict, binary: bool) -> None:
    assert decode({**v2(), **extra}).binary_output is binary


def classify(count: object) -> dict:
    return {**v2(), "outputs": [{"name": "OUTPUT__0", "parameters": {"classification": count}}]}


def test_the_classification_count_is_read_from_the_output() -> None:
    assert decode(v2()).class_count == 0
    assert decode(classify(2)).class_count == 2
    assert decode(classify(3)).class_count == 3
    with pytest.raises(InvalidInput, match=r"^iris has 3 classes; 'classification' asked for"):
        decode(classify(4))


# --- answers ------------------------------------------------------------------------------------

OUTPUTS = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], np.float32)


def test_a_json_answer_carries_the_id_version_and_data() -> None:
    payload = decode({**v2(shape=[2, 4], data=ROW * 2), "id": "r-1"})
    answer = oip_v2.encode_answer(IRIS, payload, OUTPUTS)
    assert answer.media_type == b"application/json"
    assert answer.headers == ()
    assert json.loads(answer.body) == {
        "model_name": "iris",
        "model_version": "1",
        "id": "r-1",
        "outputs": [
            {
                "name": "OUTPUT__0",
                "datatype": "FP32",
                "shape": [2, 3],
                "data": pytest.approx(OUTPUTS.ravel().tolist()),
            }
        ],
    }


def split_answer(answer: oip_v2.Answer) -> tuple[dict, bytes]:
    ((name, value),) = answer.headers
    assert name == b"inference-header-content-length"
    length = int(value)
    return msgspec.json.decode(answer.body[:length]), answer.body[length:]


def test_a_binary_answer_is_the_header_then_little_endian_float32() -> None:
    payload = decode({**v2(shape=[2, 4], data=ROW * 2), "parameters": {"binary_data_output": True}})
    answer = oip_v2.encode_answer(IRIS, payload, OUTPUTS.astype(np.float64))
    assert answer.media_type == b"application/octet-stream"
    header, raw = split_answer(answer)
    assert header["outputs"] == [
        {
            "name": "OUTPUT__0",
            "datatype": "FP32",
            "shape": [2, 3],
            "parameters": {"binary_data_size": 24},
        }
    ]
    assert header["model_version"] == "1"
    np.testing.assert_array_equal(np.frombuffer(raw, "<f4"), OUTPUTS.ravel())


def test_the_top_classes_as_json_strings() -> None:
    payload = decode(classify(2))
    body = json.loads(oip_v2.encode_answer(IRIS, payload, OUTPUTS).body)
    (tensor,) = body["outputs"]
    assert tensor == {
        "name": "OUTPUT__0",
        "datatype": "BYTES",
        "shape": [2, 2],
        "data": [
            "0.700000:1:versicolor",
            "0.200000:2:virginica",
            "0.500000:0:setosa",
            "0.250000:1:versicolor",
        ],
    }


def test_the_top_classes_as_binary_bytes_elements() -> None:
    request = classify(1)
    request["outputs"][0]["parameters"]["binary_data"] = True
    answer = oip_v2.encode_answer(IRIS, decode(request), OUTPUTS)
    header, raw = split_answer(answer)
    assert header["outputs"][0]["name"] == "OUTPUT__0"
    assert header["outputs"][0]["shape"] == [2, 1]
    assert header["outputs"][0]["datatype"] == "BYTES"
    first, second = b"0.700000:1:versicolor", b"0.500000:0:setosa"
    assert raw == struct.pack("<I", len(first)) + first + struct.pack("<I", len(second)) + second
    assert header["outputs"][0]["parameters"] == {"binary_data_size": len(raw)}


def test_a_regressor_answers_its_one_value_per_row() -> None:
    features = REGRESSION.input.features
    tensor = {"name": "INPUT__0", "shape": [1, features], "datatype": "FP32"}
    body = json.dumps({"inputs": [{**tensor, "data": [0] * features}]}).encode()
    payload = oip_v2.decode_request(body, None, REGRESSION, 8, 30.0)
    answer = json.loads(oip_v2.encode_answer(REGRESSION, payload, np.array([[1.5]])).body)
    assert answer["outputs"][0]["shape"] == [1, 1]
    assert answer["outputs"][0]["data"] == [1.5]
    assert "id" not in answer
