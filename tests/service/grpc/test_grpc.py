"""Triton's gRPC service against the real server, with the official clients: tritonclient's
gRPC client (sync and aio), its generated stubs for typed contents, and gRPC's health client."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.service.conftest import Server, start_with_grpc, wait_until

IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]], dtype=np.float32)


@pytest.fixture(scope="module")
def grpc_server(
    test_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    server = start_with_grpc(test_repo, tmp_path_factory.mktemp("grpc") / "server.log")
    yield server, server.grpc_address
    server.stop()


@pytest.fixture
def client(grpc_server: tuple[Server, str]) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(grpc_server[1]) as client:
        yield client


@pytest.fixture
def stub(grpc_server: tuple[Server, str]) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(grpc_server[1]) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def iris_input(rows: np.ndarray = IRIS, datatype: str = "FP32") -> triton.InferInput:
    tensor = triton.InferInput("INPUT__0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    return tensor


def expected_iris(http: httpx.Client) -> np.ndarray:
    answer = http.post("/v1/models/iris:predict", json={"instances": IRIS.tolist()}).json()
    return np.array([p["probabilities"] for p in answer["predictions"]], dtype=np.float32)


def test_server_and_model_health(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert not client.is_model_ready("corrupt")  # in the repository, failed to load
    metadata = client.get_server_metadata()
    assert metadata.name == "mlp-serve"
    assert "model_repository" in metadata.extensions


def test_model_metadata_and_config_match_http(
    client: triton.InferenceServerClient, grpc_server: tuple[Server, str]
) -> None:
    metadata = client.get_model_metadata("mnist", as_json=True)
    with grpc_server[0].client() as http:
        over_http = http.get("/v2/models/mnist").json()
    assert metadata["name"] == over_http["name"]
    assert metadata["versions"] == over_http["versions"]
    assert metadata["platform"] == over_http["platform"] == "onnxruntime_onnx"  # the default
    assert client.get_model_metadata("mnist", "1").platform == "pytorch_libtorch"  # no ONNX file
    assert metadata["inputs"] == [{"name": "INPUT__0", "datatype": "FP32", "shape": ["-1", "784"]}]
    config = client.get_model_config("mnist").config
    assert (config.name, config.platform, config.max_batch_size) == (
        "mnist",
        "onnxruntime_onnx",
        1024,
    )
    assert list(config.input[0].dims) == [784]
    assert list(config.output[0].dims) == [10]


def test_infer_answers_what_http_answers(
    client: triton.InferenceServerClient, grpc_server: tuple[Server, str]
) -> None:
    result = client.infer("iris", [iris_input()], request_id="r1")
    with grpc_server[0].client() as http:
        np.testing.assert_allclose(result.as_numpy("OUTPUT__0"), expected_iris(http), rtol=1e-6)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("iris", "2", "r1")


@pytest.mark.parametrize(
    "datatype",
    ["FP64", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"],
)
def test_every_datatype_as_raw_contents(
    client: triton.InferenceServerClient, datatype: str
) -> None:
    rows = np.array([[5, 3, 1, 0], [7, 3, 5, 2]])
    typed = rows.astype(triton.triton_to_np_dtype(datatype))
    result = client.infer("iris", [iris_input(typed, datatype)])
    plain = client.infer("iris", [iris_input(rows.astype(np.float32))])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__0"), plain.as_numpy("OUTPUT__0"))


@pytest.mark.parametrize(
    ("datatype", "field", "values"),
    [
        ("FP32", "fp32_contents", IRIS.ravel().tolist()),
        ("FP64", "fp64_contents", IRIS.ravel().tolist()),
        ("INT32", "int_contents", [5, 3, 1, 0, 7, 3, 5, 2]),
        ("INT64", "int64_contents", [5, 3, 1, 0, 7, 3, 5, 2]),
        ("UINT8", "uint_contents", [5, 3, 1, 0, 7, 3, 5, 2]),
    ],
)
def test_typed_contents(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, datatype: str, field: str, values: list
) -> None:
    tensor = service_pb2.ModelInferRequest.InferInputTensor(
        name="INPUT__0", datatype=datatype, shape=[2, 4]
    )
    getattr(tensor.contents, field).extend(values)
    response = stub.ModelInfer(service_pb2.ModelInferRequest(model_name="iris", inputs=[tensor]))
    outputs = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 3)
    expected_rows = np.array(values, dtype=np.float32).reshape(2, 4)
    raw = service_pb2.ModelInferRequest.InferInputTensor(
        name="INPUT__0", datatype="FP32", shape=[2, 4]
    )
    plain = stub.ModelInfer(
        service_pb2.ModelInferRequest(
            model_name="iris", inputs=[raw], raw_input_contents=[expected_rows.tobytes()]
        )
    )
    np.testing.assert_array_equal(
        outputs, np.frombuffer(plain.raw_output_contents[0], "<f4").reshape(2, 3)
    )


@pytest.mark.parametrize(
    ("call", "code", "says"),
    [
        (lambda c: c.infer("nope", [iris_input()]), "NOT_FOUND", "unknown model 'nope'"),
        (
            lambda c: c.infer("iris", [iris_input(IRIS[:, :3])]),
            "INVALID_ARGUMENT",
            "expects shape [N, 4]",
        ),
        (
            lambda c: c.infer("iris", [iris_input(np.zeros((5000, 4), np.float32))]),
            "RESOURCE_EXHAUSTED",
            "5000 rows in one request; the limit is 4096",
        ),
        (
            lambda c: c.infer("corrupt", [iris_input()]),
            "UNAVAILABLE",
            "model 'corrupt' is not ready",
        ),
        (
            lambda c: c.infer("iris", [iris_input(np.full((1, 4), np.inf, np.float32))]),
            "INVALID_ARGUMENT",
            "values must be finite",
        ),
        (lambda c: c.load_model("corrupt"), "INVALID_ARGUMENT", "failed to load 'corrupt'"),
        (lambda c: c.get_model_metadata("iris", "9"), "NOT_FOUND", "has no version '9'"),
    ],
    ids=["unknown model", "shape", "rows", "not ready", "not finite", "load fails", "version"],
)
def test_errors_are_tritons_codes_with_https_messages(
    client: triton.InferenceServerClient, call, code: str, says: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        call(client)
    assert caught.value.status() == f"StatusCode.{code}"
    assert says in caught.value.message()


def test_repository_index_load_and_unload(client: triton.InferenceServerClient) -> None:
    index = {(m.name, m.version): m.state for m in client.get_model_repository_index().models}
    assert index[("iris", "1")] == "READY"
    assert index[("corrupt", "1")] == "UNAVAILABLE"
    client.unload_model("binary")
    with pytest.raises(InferenceServerException, match="unloaded"):
        client.is_model_ready("binary")
    with pytest.raises(InferenceServerException, match="unloaded"):
        client.get_model_metadata("binary")
    client.load_model("binary")
    assert client.is_model_ready("binary")


def test_stream_infer_is_unimplemented_with_a_reason(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ModelStreamInfer(iter([service_pb2.ModelInferRequest(model_name="iris")])))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "use ModelInfer" in caught.value.details()


def test_the_aio_client(grpc_server: tuple[Server, str]) -> None:
    async def infer() -> np.ndarray:
        async with triton_aio.InferenceServerClient(grpc_server[1]) as client:
            answers = await asyncio.gather(
                *(client.infer("iris", [iris_input()]) for _ in range(8))
            )
            return np.stack([a.as_numpy("OUTPUT__0") for a in answers])

    outputs = asyncio.run(infer())
    assert outputs.shape == (8, 2, 3)
    assert (outputs[:, 0].argmax(axis=1) == 0).all()


def test_health_service(grpc_server: tuple[Server, str]) -> None:
    with grpc.insecure_channel(grpc_server[1]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as caught:
            health.Check(health_pb2.HealthCheckRequest(service="other"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_requests_are_counted_and_logged(
    client: triton.InferenceServerClient, grpc_server: tuple[Server, str]
) -> None:
    client.infer("iris", [iris_input()])
    with grpc_server[0].client() as http:
        exposition = http.get("/metrics").text
    assert 'endpoint="grpc/infer"' in exposition
    wait_until(lambda: '"protocol":"grpc"' in grpc_server[0].log(), "a gRPC access-log line")
    assert '"path":"/inference.GRPCInferenceService/ModelInfer"' in grpc_server[0].log()


def test_the_api_key_as_metadata(test_repo: Path, tmp_path: Path) -> None:
    server = start_with_grpc(test_repo, tmp_path / "server.log", api_key="s3cret")
    url = server.grpc_address
    try:
        with triton.InferenceServerClient(url) as client:
            assert client.is_server_live()  # health and server metadata need no key, as on HTTP
            with pytest.raises(InferenceServerException) as caught:
                client.infer("iris", [iris_input()])
            assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
            with pytest.raises(InferenceServerException) as caught:
                client.infer("iris", [iris_input()], headers={"x-api-key": "wrong"})
            assert caught.value.status() == "StatusCode.PERMISSION_DENIED"
            for headers in ({"authorization": "Bearer s3cret"}, {"x-api-key": "s3cret"}):
                assert (
                    client.infer("iris", [iris_input()], headers=headers).as_numpy("OUTPUT__0")
                    is not None
                )
    finally:
        server.stop()


def test_drain_turns_health_not_serving_at_once(test_repo: Path, tmp_path: Path) -> None:
    server = start_with_grpc(test_repo, tmp_path / "server.log", drain_delay_s="600")
    url = server.grpc_address
    try:
        with grpc.insecure_channel(url) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            server.process.send_signal(signal.SIGTERM)
            wait_until(
                lambda: (
                    health.Check(health_pb2.HealthCheckRequest()).status
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                ),
                "health NOT_SERVING while draining",
            )
            with triton.InferenceServerClient(url) as client:
                assert not client.is_server_ready()
                assert client.infer("iris", [iris_input()]).as_numpy("OUTPUT__0").shape == (2, 3)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=120) == 0
    finally:
        server.stop()


def test_http_model_config_is_the_grpc_one(
    client: triton.InferenceServerClient, grpc_server: tuple[Server, str]
) -> None:
    import tritonclient.http as triton_http
    from google.protobuf import json_format

    over_grpc = client.get_model_config("iris", as_json=True)["config"]
    http_url = grpc_server[0].base_url.removeprefix("http://")
    with triton_http.InferenceServerClient(http_url) as http_client:
        over_http = http_client.get_model_config("iris")
        versioned = http_client.get_model_config("iris", "2")
        torchscript = http_client.get_model_config("iris", "1")
    assert over_http == versioned
    assert (over_http["platform"], torchscript["platform"]) == (
        "onnxruntime_onnx",
        "pytorch_libtorch",
    )
    assert {**torchscript, "platform": "onnxruntime_onnx"} == over_http
    assert over_http["input"] == [{"name": "INPUT__0", "data_type": "TYPE_FP32", "dims": [4]}]
    assert over_http["max_batch_size"] == 256
    as_message = json_format.ParseDict(over_http, triton.model_config_pb2.ModelConfig())
    assert json_format.MessageToDict(as_message, preserving_proto_field_name=True) == over_grpc


def top_two(scores: np.ndarray, names: list[str]) -> list[list[bytes]]:
    order = np.argsort(-scores, axis=1)[:, :2]
    return [
        [f"{row[i]:f}:{i}:{names[i]}".encode() for i in indices]
        for row, indices in zip(scores, order, strict=True)
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_classification_over_http(grpc_server: tuple[Server, str], binary: bool) -> None:
    import tritonclient.http as triton_http

    http_url = grpc_server[0].base_url.removeprefix("http://")
    with triton_http.InferenceServerClient(http_url) as client:
        x = triton_http.InferInput("INPUT__0", [2, 4], "FP32")
        x.set_data_from_numpy(IRIS)
        plain = client.infer("iris", [x]).as_numpy("OUTPUT__0")
        wanted = triton_http.InferRequestedOutput("OUTPUT__0", binary_data=binary, class_count=2)
        classes = client.infer("iris", [x], outputs=[wanted]).as_numpy("OUTPUT__0")
    assert classes.shape == (2, 2)
    names = ["setosa", "versicolor", "virginica"]
    assert [[c if isinstance(c, bytes) else c.encode() for c in row] for row in classes] == (
        top_two(plain, names)
    )


def test_classification_over_grpc(client: triton.InferenceServerClient) -> None:
    plain = client.infer("iris", [iris_input()]).as_numpy("OUTPUT__0")
    wanted = triton.InferRequestedOutput("OUTPUT__0", class_count=2)
    classes = client.infer("iris", [iris_input()], outputs=[wanted]).as_numpy("OUTPUT__0")
    assert classes.tolist() == top_two(plain, ["setosa", "versicolor", "virginica"])
    with pytest.raises(InferenceServerException, match="has 3 classes"):
        client.infer(
            "iris",
            [iris_input()],
            outputs=[triton.InferRequestedOutput("OUTPUT__0", class_count=4)],
        )


def test_statistics_over_http_and_grpc(
    client: triton.InferenceServerClient, grpc_server: tuple[Server, str]
) -> None:
    import tritonclient.http as triton_http

    http_url = grpc_server[0].base_url.removeprefix("http://")
    with triton_http.InferenceServerClient(http_url) as http_client:
        before = http_client.get_inference_statistics("regression", "2")["model_stats"][0]
        x = triton_http.InferInput("INPUT__0", [3, 500], "FP32")
        x.set_data_from_numpy(np.zeros((3, 500), np.float32))
        http_client.infer("regression", [x])
        bad = triton_http.InferInput("INPUT__0", [1, 500], "FP32")
        bad.set_data_from_numpy(np.full((1, 500), np.nan, np.float32))
        with pytest.raises(InferenceServerException):
            http_client.infer("regression", [bad])
        after = http_client.get_inference_statistics("regression", "2")["model_stats"][0]
        every = http_client.get_inference_statistics()["model_stats"]
    assert (after["name"], after["version"]) == ("regression", "2")
    assert after["inference_count"] == before["inference_count"] + 3
    assert after["execution_count"] == before["execution_count"] + 1
    stats, was = after["inference_stats"], before["inference_stats"]
    assert stats["success"]["count"] == was["success"]["count"] + 1
    assert stats["fail"]["count"] == was["fail"]["count"] + 1
    assert stats["queue"]["count"] == was["queue"]["count"] + 1
    assert stats["success"]["ns"] > was["success"]["ns"]
    assert any(batch["batch_size"] == 3 for batch in after["batch_stats"])
    # perf_analyzer refuses statistics whose compute phases count differently
    phases = ("compute_input", "compute_infer", "compute_output")
    assert len({stats[phase]["count"] for phase in phases}) == 1
    assert {(s["name"], s["version"]) for s in every} >= {("iris", "1"), ("regression", "2")}
    over_grpc = client.get_inference_statistics("regression", "2", as_json=True)["model_stats"][0]
    assert int(over_grpc["inference_count"]) == after["inference_count"]


def test_two_workers_share_the_grpc_port(tmp_path: Path) -> None:
    """With --workers 2 both bind the port (SO_REUSEPORT); calls over fresh channels land on
    either, and each answers."""
    from tests.conftest import copy_bundled

    server = start_with_grpc(
        copy_bundled(tmp_path / "models", "iris"), tmp_path / "s.log", workers="2"
    )
    try:
        for _ in range(8):
            with triton.InferenceServerClient(server.grpc_address) as fresh:
                assert fresh.infer("iris", [iris_input()]).as_numpy("OUTPUT__0").shape == (2, 3)
        assert server.log().count("gRPC running on") == 2
    finally:
        assert server.stop() == 0
