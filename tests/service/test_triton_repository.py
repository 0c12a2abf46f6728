"""A Triton repository as it is (config.pbtxt, labels.txt, TorchScript or ONNX files, no card):
loaded in process by `ModelRegistry`, then served end to end to the official tritonclient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from torch import nn

from modelrepo.config import BatchingConfig, parse_config
from modelrepo.layout import sha256_of
from service.loading import LoadError, LoadPolicy, load_version
from service.repository import READY, UNAVAILABLE, IndexEntry, ModelRegistry
from tests.service.conftest import Server, start_with_grpc
from tests.service.test_repository import serve
from tests.triton_models import (
    CONFIG,
    INPUT,
    LABELS,
    ONNX_CONFIG,
    OUTPUT,
    ROWS,
    write_onnx_model,
    write_torchscript,
    write_triton_model,
)

IRIS_ROW = np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)


def test_a_card_less_model_is_served_from_its_config(tmp_path: Path) -> None:
    write_triton_model(tmp_path / "pets", config=CONFIG + "dynamic_batching { }\n")

    async def scenario(registry: ModelRegistry) -> None:
        model = registry.get("pets")
        assert not model.has_card
        assert (model.runtime.name, model.file) == ("torchscript", "model.pt")
        assert model.digest == sha256_of(tmp_path / "pets" / "1" / "model.pt")
        assert (model.card.task, model.card.output.class_names) == ("classification", list(LABELS))
        assert (model.card.input.name, model.card.output.name) == (INPUT, OUTPUT)
        assert model.batcher.max_batch_size == 8
        answer = await model.infer(ROWS, 30)
        assert answer.argmax(axis=1).tolist() == [0, 1, 2]
        config = model.config()
        assert (config.input[0].name, list(config.input[0].dims)) == (INPUT, [4])
        assert config.platform == "pytorch_libtorch"

    serve(tmp_path, scenario)


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ("", [3]),
        ("version_policy: { latest: { num_versions: 2 } }", [2, 3]),
        ("version_policy: { all { } }", [1, 2, 3]),
        ("version_policy: { specific: { versions: [ 1, 3 ] } }", [1, 3]),
    ],
)
def test_the_version_policy_chooses_what_serves(
    tmp_path: Path, policy: str, served: list[int]
) -> None:
    write_triton_model(tmp_path / "pets", versions=(1, 2, 3), config=CONFIG + policy)

    async def scenario(registry: ModelRegistry) -> None:
        entry = registry.entry("pets")
        assert (entry.versions, entry.default_version) == (served, served[-1])
        assert registry.index() == [IndexEntry("pets", str(v), READY, "") for v in served]
        left_out = min({1, 2, 3} - set(served), default=None)
        if left_out is not None:
            with pytest.raises(Exception, match=f"has no version '{left_out}'"):
                registry.get("pets", str(left_out))

    serve(tmp_path, scenario)


def test_a_policy_that_selects_nothing_on_disk_says_so(tmp_path: Path) -> None:
    policy = "version_policy: { specific: { versions: [ 7 ] } }"
    write_triton_model(tmp_path / "pets", config=CONFIG + policy)

    async def scenario(registry: ModelRegistry) -> None:
        entry = registry.entry("pets")
        assert not entry.ready
        assert (
            entry.reason() == "config.pbtxt's version_policy selects none of the versions on disk"
        )

    serve(tmp_path, scenario)


def test_default_model_filename_max_batch_size_and_the_queue_delay_are_honoured(
    tmp_path: Path,
) -> None:
    config = CONFIG.replace("max_batch_size: 8", "max_batch_size: 4")
    config += 'default_model_filename: "net.pt"\n'
    config += "dynamic_batching { max_queue_delay_microseconds: 3000 }\n"
    write_triton_model(tmp_path / "pets", config=config, file_name="net.pt")

    async def scenario(registry: ModelRegistry) -> None:
        model = registry.get("pets")
        assert model.file == "net.pt"
        assert (model.batcher.max_batch_size, model.batcher.max_queue_delay_s) == (4, 0.003)

    serve(tmp_path, scenario)


def test_max_batch_size_0_serves_dims_with_the_batch_in_them(tmp_path: Path) -> None:
    config = CONFIG.replace("max_batch_size: 8", "max_batch_size: 0")
    config = config.replace("dims: [ 4 ]", "dims: [ -1, 4 ]").replace(
        "dims: [ 3 ]", "dims: [ -1, 3 ]"
    )
    write_triton_model(tmp_path / "pets", config=config)

    async def scenario(registry: ModelRegistry) -> None:
        model = registry.get("pets")
        assert model.batcher.max_batch_size == 32  # SERVE_MAX_BATCH_SIZE bounds a pass
        assert (await model.infer(ROWS, 30)).argmax(axis=1).tolist() == [0, 1, 2]

    serve(tmp_path, scenario, max_batch_size=32)


def test_an_onnx_model_without_labels_serves_values(tmp_path: Path) -> None:
    write_onnx_model(tmp_path / "flowers", ONNX_CONFIG)

    async def scenario(registry: ModelRegistry) -> None:
        model = registry.get("flowers")
        assert (model.runtime.name, model.file, model.has_card) == (
            "onnxruntime",
            "model.onnx",
            False,
        )
        assert (model.card.task, model.card.output.value_name) == ("regression", "OUTPUT__0")
        assert (await model.infer(IRIS_ROW, 30)).argmax() == 0

    serve(tmp_path, scenario)


class Wide(nn.Module):
    def forward(self, rows):  # type: ignore[no-untyped-def]
        return rows.repeat(1, 2)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (
            lambda d: (d / "config.pbtxt").write_text(
                CONFIG.replace("TYPE_FP32 dims: [ 4 ]", "TYPE_INT64 dims: [ 4 ]")
            ),
            "no card.json, and config.pbtxt cannot serve it: this server serves FP32 (N, features) "
            "-> (N, outputs) models; input__0 is TYPE_INT64",
        ),
        (
            lambda d: (d / "labels.txt").write_text("cat\ndog\n"),
            "no card.json, and config.pbtxt cannot serve it: labels.txt has 2 labels (one per "
            "line), but output__0 has 3 outputs",
        ),
        (
            lambda d: (d / "1" / "model.pt").rename(d / "1" / "other.pt"),
            "model.pt is missing (and there is no card.json)",
        ),
        (
            lambda d: write_torchscript(d / "1" / "model.pt", module=Wide()),
            "model.pt answers shape [1, 8] for one row; config.pbtxt declares output__0 with 3 "
            "outputs",
        ),
    ],
)
def test_a_model_that_cannot_be_served_is_unready_with_the_reason(
    tmp_path: Path, setup: Callable[[Path], object], reason: str
) -> None:
    write_triton_model(tmp_path / "pets")
    setup(tmp_path / "pets")

    async def scenario(registry: ModelRegistry) -> None:
        assert registry.index() == [IndexEntry("pets", "1", UNAVAILABLE, reason)]
        assert str(tmp_path) not in reason

    serve(tmp_path, scenario)


class NeedsFive(nn.Module):
    """A model written for 5 features, beside a config.pbtxt that declares 4."""

    def forward(self, rows):  # type: ignore[no-untyped-def]
        return rows @ torch.ones(5, 3)


def test_a_model_whose_one_row_check_raises_is_unready_with_the_error(tmp_path: Path) -> None:
    """Without warm-up, the one-row check is the first forward pass: its error is the reason."""
    write_triton_model(tmp_path / "pets")
    write_torchscript(tmp_path / "pets" / "1" / "model.pt", module=NeedsFive())
    reason = (
        "a forward pass of one row failed: RuntimeError: mat1 and mat2 shapes cannot be multiplied "
        "(1x4 and 5x3)"
    )

    async def scenario(registry: ModelRegistry) -> None:
        assert registry.index() == [IndexEntry("pets", "1", UNAVAILABLE, reason)]

    serve(tmp_path, scenario, warmup=False)


@pytest.mark.parametrize(
    ("onnx", "runtime", "device", "reason"),
    [
        (
            False,
            "onnxruntime",
            "cpu",
            "SERVE_RUNTIME=onnxruntime, but config.pbtxt's platform is served by torchscript",
        ),
        (
            True,
            "torchscript",
            "cpu",
            "SERVE_RUNTIME=torchscript, but config.pbtxt's platform is served by onnxruntime",
        ),
        (
            True,
            "auto",
            "cuda",
            "ONNX Runtime serves on the CPU here, not cuda: this model's config.pbtxt names an "
            "ONNX model",
        ),
    ],
)
def test_the_platform_decides_the_runtime_within_serve_runtime_and_the_device(
    tmp_path: Path, onnx: bool, runtime: str, device: str, reason: str
) -> None:
    model_dir = write_onnx_model(tmp_path / "m") if onnx else write_triton_model(tmp_path / "m")
    config = parse_config((model_dir / "config.pbtxt").read_text())
    policy = LoadPolicy(device, warmup=False, max_staging_bytes=1 << 20, runtime=runtime)  # type: ignore[arg-type]
    with pytest.raises(LoadError) as refused:
        load_version(model_dir / "1", "m", BatchingConfig(8, 0.0), policy, config)
    assert str(refused.value) == reason


def test_the_trusted_list_applies_to_a_card_less_model(tmp_path: Path) -> None:
    write_triton_model(
        tmp_path / "models" / "pets", versions=(1, 2), config=CONFIG + "version_policy { all {} }"
    )
    trusted = tmp_path / "trusted.txt"
    digest = sha256_of(tmp_path / "models" / "pets" / "2" / "model.pt")
    trusted.write_text(f"{digest}  pets/2/model.pt\n")

    async def scenario(registry: ModelRegistry) -> None:
        entry = registry.entry("pets")
        assert sorted(entry.loaded) == [2]
        other = sha256_of(tmp_path / "models" / "pets" / "1" / "model.pt")
        assert entry.failed == {
            1: f"sha256 of model.pt ({other}) is not in the trusted list (SERVE_TRUSTED_HASHES)"
        }

    serve(tmp_path / "models", scenario, trusted_hashes=trusted)


def test_a_refusal_by_the_trusted_list_names_the_file_config_pbtxt_names(tmp_path: Path) -> None:
    config = CONFIG + 'default_model_filename: "net.pt"\n'
    write_triton_model(tmp_path / "models" / "pets", config=config, file_name="net.pt")
    trusted = tmp_path / "trusted.txt"
    trusted.write_text(f"{'0' * 64}\n")
    digest = sha256_of(tmp_path / "models" / "pets" / "1" / "net.pt")

    async def scenario(registry: ModelRegistry) -> None:
        assert registry.entry("pets").failed == {
            1: f"sha256 of net.pt ({digest}) is not in the trusted list (SERVE_TRUSTED_HASHES)"
        }

    serve(tmp_path / "models", scenario, trusted_hashes=trusted)


def test_a_reload_keeps_an_unchanged_card_less_version_and_reloads_a_changed_one(
    tmp_path: Path,
) -> None:
    write_triton_model(tmp_path / "pets")

    async def scenario(registry: ModelRegistry) -> None:
        before = registry.get("pets")
        await registry.load("pets")
        assert registry.get("pets") is before  # nothing changed on disk
        (tmp_path / "pets" / "labels.txt").write_text("ant\nbee\nwasp\n")
        await registry.load("pets")
        after = registry.get("pets")
        assert after is not before
        assert after.card.output.class_names == ["ant", "bee", "wasp"]

    serve(tmp_path, scenario)


# End to end: the repository served by `python -m service`, asked by tritonclient -----------


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("triton-repo") / "models"
    write_triton_model(root / "pets", versions=(1, 2), config=CONFIG + "dynamic_batching { }\n")
    write_onnx_model(root / "flowers", ONNX_CONFIG)
    server = start_with_grpc(root, tmp_path_factory.mktemp("triton-server") / "server.log")
    yield server
    server.stop()


def test_tritonclient_http_infers_and_classifies(triton_server: Server) -> None:
    client = triton_http.InferenceServerClient(triton_server.base_url.removeprefix("http://"))
    try:
        assert client.is_model_ready("pets")
        assert not client.is_model_ready("pets", "1")  # Triton's default policy: the latest
        meta = client.get_model_metadata("pets")
        assert meta["inputs"] == [{"name": INPUT, "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, 3]}]
        assert meta["parameters"] == {"has_card": False}
        assert client.get_model_config("pets")["max_batch_size"] == 8
        tensor = triton_http.InferInput(INPUT, list(ROWS.shape), "FP32")
        tensor.set_data_from_numpy(ROWS, binary_data=True)
        result = client.infer("pets", [tensor])
        assert result.as_numpy(OUTPUT).argmax(axis=1).tolist() == [0, 1, 2]
        top = triton_http.InferRequestedOutput(OUTPUT, class_count=1)
        classes = client.infer("pets", [tensor], outputs=[top]).as_numpy(OUTPUT)
        assert [row[0].decode().split(":")[1:] for row in classes] == [
            ["0", "cat"],
            ["1", "dog"],
            ["2", "fish"],
        ]
    finally:
        client.close()


def test_tritonclient_grpc_infers_and_classifies(triton_server: Server) -> None:
    with triton_grpc.InferenceServerClient(triton_server.grpc_address) as client:
        assert client.get_model_metadata("pets", as_json=True)["platform"] == "pytorch_libtorch"
        tensor = triton_grpc.InferInput(INPUT, list(ROWS.shape), "FP32")
        tensor.set_data_from_numpy(ROWS)
        top = triton_grpc.InferRequestedOutput(OUTPUT, class_count=2)
        classes = client.infer("pets", [tensor], outputs=[top]).as_numpy(OUTPUT)
        assert [row[0].decode().split(":")[2] for row in classes] == list(LABELS)
        iris = triton_grpc.InferInput("INPUT__0", [1, 4], "FP32")
        iris.set_data_from_numpy(IRIS_ROW)
        assert client.infer("flowers", [iris]).as_numpy("OUTPUT__0").argmax() == 0


def test_v1_answers_carry_class_names_and_the_status_says_there_is_no_card(
    triton_server: Server,
) -> None:
    with httpx.Client(base_url=triton_server.base_url, timeout=30) as http:
        answer = http.post("/v1/models/pets:predict", json={"instances": ROWS.tolist()}).json()
        assert answer["model_version"] == "2"
        assert [p["class_name"] for p in answer["predictions"]] == list(LABELS)
        values = http.post("/v1/models/flowers:predict", json={"instances": IRIS_ROW.tolist()})
        (prediction,) = values.json()["predictions"]
        assert len(prediction["value"]) == 3  # every output of a model without labels
        status = http.get("/v1/models/pets").json()
        assert (status["card"], status["has_card"], status["versions"]) == (None, False, ["2"])
        assert status["stats"]["2"]["has_card"] is False


@pytest.mark.parametrize(
    "hostile",
    ['default_model_filename: "model\\000.pt"\n', 'label_filename: "labels\\000.txt"'],
)
def test_a_reload_onto_a_config_naming_a_file_with_a_nul_keeps_serving_and_says_why(
    tmp_path: Path, hostile: str
) -> None:
    write_triton_model(tmp_path / "pets")

    async def scenario(registry: ModelRegistry) -> None:
        before = registry.get("pets")
        config = (
            CONFIG + hostile
            if hostile.startswith("default")
            else CONFIG.replace('label_filename: "labels.txt"', hostile)
        )
        (tmp_path / "pets" / "config.pbtxt").write_text(config)
        entry = await registry.load("pets")  # neither raises nor stops serving the old version
        assert registry.get("pets") is before
        assert entry.failed[1].startswith("no card.json, and config.pbtxt cannot serve it: ")

    serve(tmp_path, scenario)
