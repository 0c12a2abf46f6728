"""A table of bad requests: each gets a 4xx with a JSON error that says what to fix."""

from __future__ import annotations

import json

import pytest

ROW = [5.1, 3.5, 1.4, 0.2]
JSON = {"content-type": "application/json"}


def v2(**tensor: object) -> dict:
    base = {"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": ROW}
    return {"inputs": [{**base, **tensor}]}


def named(**changes: object) -> bytes:
    """One iris instance keyed by its feature names; a change to None drops that name."""
    names = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    instance = {**dict(zip(names, ROW, strict=True)), **changes}
    return json.dumps(
        {"instances": [{k: v for k, v in instance.items() if v is not None}]}
    ).encode()


V1_CASES = [
    # (description, path, body bytes, headers, status, text in the error)
    ("not JSON", "iris:predict", b"instances", JSON, 400, "not valid JSON"),
    ("empty body", "iris:predict", b"", JSON, 400, "body is empty"),
    ("NaN", "iris:predict", b'{"instances": [[NaN, 1, 2, 3]]}', JSON, 400, "NaN"),
    ("Infinity", "iris:predict", b'{"instances": [[Infinity, 1, 2, 3]]}', JSON, 400, "Infinity"),
    ("1e400", "iris:predict", b'{"instances": [[1e400, 1, 2, 3]]}', JSON, 400, "out of range"),
    (
        "too few features",
        "iris:predict",
        b'{"instances": [[1, 2, 3, 4], [1, 2, 3]]}',
        JSON,
        422,
        "iris expects 4 features per instance; instance 1 has 3",
    ),
    ("a string", "iris:predict", b'{"instances": [[1, 2, 3, "4"]]}', JSON, 422, "Expected `float`"),
    ("a bool", "iris:predict", b'{"instances": [[1, 2, 3, true]]}', JSON, 422, "Expected `float`"),
    (
        "flat instances",
        "iris:predict",
        b'{"instances": [1, 2, 3, 4]}',
        JSON,
        422,
        "Expected `object | array`",
    ),
    ("unknown name", "iris:predict", named(alcohol=13.2), JSON, 422, "unknown feature 'alcohol'"),
    ("missing name", "iris:predict", named(petal_width_cm=None), JSON, 422, "'petal_width_cm'"),
    (
        "repeated name",
        "iris:predict",
        named().replace(b"}", b', "sepal_width_cm": 3}'),
        JSON,
        422,
        "gives feature 'sepal_width_cm' more than once",
    ),
    (
        "named string",
        "iris:predict",
        named(petal_width_cm="0.2"),
        JSON,
        422,
        "got `str` - at `$.instances[0].petal_width_cm`",
    ),
    ("names to mnist", "mnist:predict", named(), JSON, 422, "mnist has no feature names"),
    ("names to no names", "gated:predict", named(), JSON, 422, "send lists of 4 values"),
    ("no instances", "iris:predict", b'{"instances": []}', JSON, 422, "no rows"),
    ("missing field", "iris:predict", b'{"inputs": [[1, 2, 3, 4]]}', JSON, 422, "instances"),
    ("a list body", "iris:predict", b"[[1, 2, 3, 4]]", JSON, 422, "Expected `object`"),
    ("beyond float32", "iris:predict", b'{"instances": [[1e39, 1, 2, 3]]}', JSON, 422, "float32"),
    (
        "text/plain",
        "iris:predict",
        b'{"instances": [[1, 2, 3, 4]]}',
        {"content-type": "text/plain"},
        415,
        "send application/json",
    ),
    ("an image", "iris:predict", b"\x89PNG", {"content-type": "image/png"}, 415, ":predict-image"),
    ("unknown model", "nope:predict", b'{"instances": [[1]]}', JSON, 404, "unknown model 'nope'"),
    ("unknown verb", "iris:explain", b'{"instances": [[1]]}', JSON, 404, "unknown verb"),
    ("no verb", "iris", b'{"instances": [[1]]}', JSON, 404, ":predict"),
    (
        "unknown version",
        "iris/versions/9:predict",
        b'{"instances": [[1]]}',
        JSON,
        404,
        "no version '9'",
    ),
    ("bad version", "iris/versions/x:predict", b'{"instances": [[1]]}', JSON, 404, "no version"),
    (
        "too many rows",
        "iris:predict",
        json.dumps({"instances": [ROW] * 4097}).encode(),
        JSON,
        413,
        "the limit is 4096",
    ),
]

V2_CASES = [
    ("wrong input name", v2(name="x"), 422, "exactly one input named 'INPUT__0'"),
    ("two inputs", {"inputs": v2()["inputs"] * 2}, 422, "exactly one input"),
    ("wrong width", v2(shape=[1, 3], data=ROW[:3]), 422, "expects shape [N, 4]"),
    ("1-D shape", v2(shape=[4]), 422, "expects shape [N, 4]"),
    ("shape and data disagree", v2(shape=[2, 4]), 422, "needs 8 values; data has 4"),
    (
        "nested data of the wrong shape",
        v2(shape=[2, 4], data=[[1, 2], [3, 4], [5, 6], [7, 8]]),
        422,
        "nested data has shape [4, 2]",
    ),
    ("ragged data", v2(shape=[2, 4], data=[[1, 2, 3, 4], [1, 2, 3]]), 422, "ragged"),
    ("BYTES", v2(datatype="BYTES"), 422, "not supported"),
    ("strings in data", v2(data=["a", "b", "c", "d"]), 422, "does not hold FP32"),
    ("bools as FP32", v2(data=[True, False, True, False]), 422, "does not hold FP32"),
    ("INT8 out of range", v2(datatype="INT8", data=[1, 2, 3, 300]), 422, "does not hold INT8"),
    ("floats as INT32", v2(datatype="INT32", data=ROW), 422, "does not hold INT32"),
    ("no data", v2(data=None), 422, "has no data"),
    ("beyond FP16", v2(datatype="FP16", data=[1, 2, 3, 70000]), 422, "does not hold FP16"),
    ("beyond FP32", v2(data=[1, 2, 3, 1e39]), 422, "does not hold FP32"),
    ("FP64 beyond FP32", v2(datatype="FP64", data=[1, 2, 3, 1e39]), 422, "float32"),
    ("unknown output", {**v2(), "outputs": [{"name": "PROBS"}]}, 422, "has one output"),
    ("bad timeout", {**v2(), "parameters": {"timeout": "soon"}}, 422, "'timeout'"),
    ("no inputs", {"inputs": []}, 422, "exactly one input"),
    ("not a request", {"instances": [ROW]}, 422, "inputs"),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "headers", "status", "text"),
    V1_CASES,
    ids=[case[0] for case in V1_CASES],
)
def test_v1_bad_input(http, case, path, body, headers, status, text) -> None:  # type: ignore[no-untyped-def]
    response = http.post(f"/v1/models/{path}", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert text in response.json()["error"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("case", "request_body", "status", "text"), V2_CASES, ids=[case[0] for case in V2_CASES]
)
def test_v2_bad_input(http, case, request_body, status, text) -> None:  # type: ignore[no-untyped-def]
    response = http.post("/v2/models/iris/infer", json=request_body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert text in response.json()["error"]


@pytest.mark.parametrize(
    ("header_length", "body", "text"),
    [
        ("abc", b"{}", "must be an integer"),
        ("999", b"{}", "does not fit"),
        ("0", b"{}", "does not fit"),
    ],
)
def test_v2_bad_binary_framing(http, header_length: str, body: bytes, text: str) -> None:  # type: ignore[no-untyped-def]
    response = http.post(
        "/v2/models/iris/infer",
        content=body,
        headers={"Inference-Header-Content-Length": header_length},
    )
    assert response.status_code == 400
    assert text in response.json()["error"]


def test_v2_binary_size_mismatch(http) -> None:  # type: ignore[no-untyped-def]
    header = json.dumps(v2(data=None, parameters={"binary_data_size": 16})).encode()
    response = http.post(
        "/v2/models/iris/infer",
        content=header + b"\0" * 12,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400
    assert "binary_data_size 16" in response.json()["error"]


def test_v2_text_plain_is_415(http) -> None:  # type: ignore[no-untyped-def]
    response = http.post(
        "/v2/models/iris/infer", content=json.dumps(v2()), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


def test_body_too_large_is_413(http) -> None:  # type: ignore[no-untyped-def]
    body = b'{"instances": [' + b"[1.0, 2.0, 3.0, 4.0]," * 900_000 + b"[1, 2, 3, 4]]}"
    response = http.post("/v1/models/iris:predict", content=body, headers=JSON)
    assert response.status_code == 413
    assert "SERVE_MAX_BODY_BYTES" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("DELETE", "/v1/models", 405),
        ("GET", "/v2/models/nope", 404),
        ("GET", "/v2/models/iris/versions/7", 404),
        ("PUT", "/v2/models/iris/infer", 405),
    ],
)
def test_routing_errors_are_json(http, method: str, path: str, status: int) -> None:  # type: ignore[no-untyped-def]
    response = http.request(method, path)
    assert response.status_code == status
    assert list(response.json()) == ["error"]


def test_server_is_healthy_after_all_that(http) -> None:  # type: ignore[no-untyped-def]
    assert http.get("/v2/health/ready").status_code == 200
    response = http.post("/v1/models/iris:predict", json={"instances": [ROW]})
    assert response.json()["predictions"][0]["class_name"] == "setosa"
