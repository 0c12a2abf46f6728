"""The official tritonclient, unchanged, against the real server (JSON and binary tensors)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.service.conftest import Server

IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.9, 3.1, 5.4, 2.1]], np.float32)


@pytest.fixture
def client(server: Server):  # type: ignore[no-untyped-def]
    url = server.base_url.removeprefix("http://")
    client = triton.InferenceServerClient(url=url)
    yield client
    client.close()


def test_health_and_metadata(client) -> None:  # type: ignore[no-untyped-def]
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert not client.is_model_ready("corrupt")
    meta = client.get_model_metadata("iris")
    assert meta["platform"] == "onnxruntime_onnx"
    assert client.get_model_metadata("iris", "1")["platform"] == "pytorch_libtorch"
    assert meta["inputs"][0] == {"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 4]}
    assert client.get_server_metadata()["name"] == "mlp-serve"


@pytest.mark.parametrize("binary", [False, True])
def test_infer(client, binary: bool) -> None:  # type: ignore[no-untyped-def]
    tensor = triton.InferInput("INPUT__0", list(IRIS.shape), "FP32")
    tensor.set_data_from_numpy(IRIS, binary_data=binary)
    output = triton.InferRequestedOutput("OUTPUT__0", binary_data=binary)
    result = client.infer("iris", [tensor], outputs=[output], request_id="abc")
    probabilities = result.as_numpy("OUTPUT__0")
    assert probabilities.shape == (3, 3)
    assert probabilities.argmax(axis=1).tolist() == [0, 1, 2]
    assert result.get_response()["id"] == "abc"


# Values every datatype holds exactly (BOOL its own), so each answer must be the FP32 answer.
WHOLE_ROWS = np.array([[5, 3, 1, 0], [6, 3, 4, 1], [7, 3, 5, 2]], np.float32)
BOOL_ROWS = np.array([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]], np.float32)
NUMPY_TYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def infer_iris(client, rows: np.ndarray, datatype: str, binary: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    tensor = triton.InferInput("INPUT__0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows.astype(NUMPY_TYPES[datatype]), binary_data=binary)
    result = client.infer("iris", [tensor])
    return result.as_numpy("OUTPUT__0")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", NUMPY_TYPES)
def test_every_datatype_answers_as_fp32(client, datatype: str, binary: bool) -> None:  # type: ignore[no-untyped-def]
    rows = BOOL_ROWS if datatype == "BOOL" else WHOLE_ROWS
    expected = infer_iris(client, rows, "FP32", binary=False)
    assert np.array_equal(infer_iris(client, rows, datatype, binary), expected)


def test_infer_with_default_outputs_and_version(client) -> None:  # type: ignore[no-untyped-def]
    tensor = triton.InferInput("INPUT__0", list(IRIS.shape), "FP32")
    tensor.set_data_from_numpy(IRIS)
    result = client.infer("iris", [tensor], model_version="1")
    assert result.as_numpy("OUTPUT__0").shape == (3, 3)


def test_mnist_binary_batch(client) -> None:  # type: ignore[no-untyped-def]
    rows = np.zeros((64, 784), np.float32)
    tensor = triton.InferInput("INPUT__0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=True)
    result = client.infer("mnist", [tensor])
    assert result.as_numpy("OUTPUT__0").shape == (64, 10)
    assert np.allclose(result.as_numpy("OUTPUT__0").sum(axis=1), 1.0, atol=1e-5)


def test_errors_surface_as_exceptions_with_the_message(client) -> None:  # type: ignore[no-untyped-def]
    tensor = triton.InferInput("INPUT__0", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match=r"expects shape \[N, 4\]"):
        client.infer("iris", [tensor])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("nope")
