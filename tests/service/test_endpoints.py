"""The HTTP contract, path by path, against the real server and the bundled models."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import BUNDLED_VERSIONS
from tests.service.conftest import Server

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.9, 3.1, 5.4, 2.1]]
IRIS_LABELS = [0, 1, 2]


def test_v1_list_models(http) -> None:  # type: ignore[no-untyped-def]
    response = http.get("/v1/models")
    assert response.status_code == 200
    names = response.json()["models"]
    assert {"binary", "iris", "mnist", "regression"} <= set(names)
    assert names == sorted(names)


def test_v1_model_status_carries_card_and_versions(http) -> None:  # type: ignore[no-untyped-def]
    body = http.get("/v1/models/iris").json()
    assert body["name"] == "iris"
    assert body["ready"] is True
    assert body["versions"] == ["1", "2"]
    assert body["default_version"] == "2"
    assert body["card"]["task"] == "classification"
    assert body["card"]["output"]["class_names"] == ["setosa", "versicolor", "virginica"]
    assert body["card"]["metrics"]["test_accuracy"] >= 0.96
    assert body["stats"]["2"]["max_batch_size"] == 256
    assert (body["stats"]["2"]["runtime"], body["stats"]["2"]["device"]) == ("onnxruntime", "cpu")
    assert body["stats"]["1"]["runtime"] == "torchscript"  # no ONNX file in version 1


@pytest.mark.parametrize(
    ("path", "version"),
    [("/v1/models/iris:predict", "2"), ("/v1/models/iris/versions/1:predict", "1")],
)
def test_v1_predict_iris(http, path: str, version: str) -> None:  # type: ignore[no-untyped-def]
    response = http.post(path, json={"instances": IRIS_ROWS})
    assert response.status_code == 200
    body = response.json()
    assert (body["model_name"], body["model_version"]) == ("iris", version)
    assert [p["label"] for p in body["predictions"]] == IRIS_LABELS
    assert [p["class_name"] for p in body["predictions"]] == ["setosa", "versicolor", "virginica"]
    for prediction in body["predictions"]:
        assert sum(prediction["probabilities"]) == pytest.approx(1.0, abs=1e-5)


def test_v1_predict_iris_by_feature_names_in_any_order_beside_lists(http) -> None:  # type: ignore[no-untyped-def]
    names = http.get("/v1/models/iris").json()["card"]["input"]["feature_names"]
    first, second, third = IRIS_ROWS
    instances = [
        dict(zip(names, first, strict=True)),
        second,
        dict(reversed(list(zip(names, third, strict=True)))),
    ]
    response = http.post("/v1/models/iris:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    assert (
        response.json()
        == http.post("/v1/models/iris:predict", json={"instances": IRIS_ROWS}).json()
    )


def test_v1_predict_regression_is_close_to_the_generating_formula(http) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 500)).astype(np.float32)
    response = http.post("/v1/models/regression:predict", json={"instances": x.tolist()})
    assert response.status_code == 200
    values = [p["value"] for p in response.json()["predictions"]]
    truth = x.sum(axis=1) * 0.0056 + 0.028
    assert np.abs(np.array(values) - truth).max() < 0.05
    assert set(response.json()["predictions"][0]) == {"value"}


def test_v1_predict_binary(http) -> None:  # type: ignore[no-untyped-def]
    rows = [[2.0] * 200, [-2.0] * 200]
    body = http.post("/v1/models/binary:predict", json={"instances": rows}).json()
    assert [p["label"] for p in body["predictions"]] == [1, 0]


def test_v1_predict_mnist_with_a_real_digit(http) -> None:  # type: ignore[no-untyped-def]
    from torchvision.datasets import MNIST

    from tests.conftest import MNIST_FIXTURE

    test = MNIST(str(MNIST_FIXTURE), train=False)
    rows = (test.data[:20].reshape(20, -1).float() / 255).tolist()
    body = http.post("/v1/models/mnist:predict", json={"instances": rows}).json()
    labels = [p["label"] for p in body["predictions"]]
    assert sum(a == b for a, b in zip(labels, test.targets[:20].tolist(), strict=True)) >= 19


def test_v2_server_metadata_and_health(http) -> None:  # type: ignore[no-untyped-def]
    meta = http.get("/v2").json()
    assert meta["name"] == "mlp-serve"
    assert meta["extensions"] == [
        "binary_tensor_data",
        "classification",
        "model_repository",
        "statistics",
    ]
    assert http.post("/v2/repository/index").status_code == 200
    assert http.get("/v2/health/live").status_code == 200
    assert http.get("/v2/health/ready").status_code == 200


@pytest.mark.parametrize(
    ("path", "platform"),
    [
        ("/v2/models/mnist", "onnxruntime_onnx"),  # the default version has an ONNX file
        ("/v2/models/mnist/versions/1", "pytorch_libtorch"),
    ],
)
def test_v2_model_metadata(http, path: str, platform: str) -> None:  # type: ignore[no-untyped-def]
    meta = http.get(path).json()
    assert meta == {
        "name": "mnist",
        "versions": list(BUNDLED_VERSIONS["mnist"]),
        "platform": platform,
        "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 784]}],
        "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}],
    }


@pytest.mark.parametrize("path", ["/v2/models/iris/ready", "/v2/models/iris/versions/1/ready"])
def test_v2_model_ready(http, path: str) -> None:  # type: ignore[no-untyped-def]
    response = http.get(path)
    assert response.status_code == 200
    assert response.json() == {"name": "iris", "ready": True}


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("FP32", IRIS_ROWS),
        ("FP32", [v for row in IRIS_ROWS for v in row]),
        ("FP64", IRIS_ROWS),
        ("FP16", IRIS_ROWS),
    ],
)
def test_v2_infer_json(http, datatype: str, data: list) -> None:  # type: ignore[no-untyped-def]
    request = {
        "id": "req-7",
        "inputs": [{"name": "INPUT__0", "shape": [3, 4], "datatype": datatype, "data": data}],
    }
    response = http.post("/v2/models/iris/infer", json=request)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "req-7"
    assert (body["model_name"], body["model_version"]) == ("iris", "2")
    (output,) = body["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("OUTPUT__0", "FP32", [3, 3])
    probabilities = np.array(output["data"]).reshape(3, 3)
    assert probabilities.argmax(axis=1).tolist() == IRIS_LABELS


def test_v2_integer_datatypes_are_converted(http) -> None:  # type: ignore[no-untyped-def]
    request = {
        "inputs": [{"name": "INPUT__0", "shape": [1, 4], "datatype": "INT32", "data": [6, 3, 5, 2]}]
    }
    response = http.post("/v2/models/iris/versions/1/infer", json=request)
    assert response.status_code == 200
    assert "id" not in response.json()


@pytest.mark.parametrize(
    ("media", "path"),
    [
        ("", "/v2/models/iris/infer"),  # tritonclient
        ("application/x-www-form-urlencoded", "/v2/models/iris/infer"),  # `curl -d`
        ("application/x-www-form-urlencoded", "/v2/models/iris/versions/1/infer"),
    ],
)
def test_v2_infer_reads_these_bodies_as_json(http, media: str, path: str) -> None:  # type: ignore[no-untyped-def]
    body = (
        b'{"inputs": [{"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", '
        b'"data": [5.1, 3.5, 1.4, 0.2]}]}'
    )
    response = http.post(path, content=body, headers={"content-type": media})
    assert response.status_code == 200, response.text
    assert np.argmax(response.json()["outputs"][0]["data"]) == 0


def test_v2_binary_tensor_data_both_ways(http) -> None:  # type: ignore[no-untyped-def]
    import json

    rows = np.array(IRIS_ROWS, dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT__0",
                    "shape": [3, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ],
            "outputs": [{"name": "OUTPUT__0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    response = http.post(
        "/v2/models/iris/infer",
        content=header + rows.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )
    assert response.status_code == 200
    length = int(response.headers["Inference-Header-Content-Length"])
    meta = json.loads(response.content[:length])
    (output,) = meta["outputs"]
    assert output["parameters"]["binary_data_size"] == 3 * 3 * 4
    assert "data" not in output
    probabilities = np.frombuffer(response.content[length:], dtype="<f4").reshape(3, 3)
    assert probabilities.argmax(axis=1).tolist() == IRIS_LABELS


def test_binary_data_output_request_parameter(http) -> None:  # type: ignore[no-untyped-def]
    request = {
        "inputs": [{"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROWS[0]}],
        "parameters": {"binary_data_output": True},
    }
    response = http.post("/v2/models/iris/infer", json=request)
    assert response.status_code == 200
    assert int(response.headers["Inference-Header-Content-Length"]) < len(response.content)


def test_posts_answer_200_not_201(http) -> None:  # type: ignore[no-untyped-def]
    assert http.post("/v1/models/iris:predict", json={"instances": IRIS_ROWS}).status_code == 200


def test_openapi_documents_every_endpoint(http) -> None:  # type: ignore[no-untyped-def]
    spec = http.get("/schema/openapi.json").json()
    paths = spec["paths"]
    for path in [
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{target}",
        "/v1/models/{name}/versions/{target}",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ]:
        assert path in paths, path
    predict = paths["/v1/models/{target}"]["post"]
    assert (
        "instances" in predict["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    instance = predict["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "instances"
    ]["items"]
    assert [form["type"] for form in instance["anyOf"]] == ["array", "object"]
    assert instance["anyOf"][1]["additionalProperties"]["type"] == "number"
    named = predict["requestBody"]["content"]["application/json"]["examples"]["iris-named"]
    assert set(named["value"]["instances"][0]) == {
        "sepal_length_cm",
        "sepal_width_cm",
        "petal_length_cm",
        "petal_width_cm",
    }
    assert set(predict["responses"]) >= {"200", "400", "404", "413", "422", "503", "504"}
    infer = paths["/v2/models/{name}/infer"]["post"]
    assert "inputs" in infer["requestBody"]["content"]["application/json"]["schema"]["properties"]
    for operation in (predict, infer):
        body = operation["requestBody"]["content"]["application/json"]
        assert body["examples"]["iris"]["value"]
        assert operation["responses"]["200"]["content"]["application/json"]["examples"]
    error_schema = spec["components"]["schemas"]["ErrorResponse"]
    assert error_schema["required"] == ["error"]


def test_broken_models_are_reported_and_the_rest_serve(http, server: Server) -> None:  # type: ignore[no-untyped-def]
    reasons = {
        "corrupt": "model.pt cannot be loaded",
        "tampered": "sha256 of model.pt is",
        "badcard": "card.json is invalid",
    }
    for name, reason in reasons.items():
        status = http.get(f"/v1/models/{name}").json()
        assert status["ready"] is False
        assert reason in status["reason"]
        assert reason in status["failed_versions"]["1"]
        ready = http.get(f"/v2/models/{name}/ready")
        assert ready.status_code == 503
        assert reason in ready.json()["error"]
        predict = http.post(f"/v1/models/{name}:predict", json={"instances": IRIS_ROWS})
        assert predict.status_code == 503
        assert "Retry-After" in predict.headers
    assert http.get("/v2/health/ready").status_code == 200
    assert http.post("/v1/models/iris:predict", json={"instances": IRIS_ROWS}).status_code == 200
    assert "model tampered version 1 not loaded" in server.log()
