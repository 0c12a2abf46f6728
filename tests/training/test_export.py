from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch
from tritonclient.grpc import model_config_pb2

from modelrepo import layout
from modelrepo import torchscript as jit
from modelrepo.card import ModelCard
from modelrepo.config import format_config, parse_config
from training import data, export
from training.pipeline import build_model
from training.tasks import IRIS, TASKS


@pytest.mark.parametrize("name", sorted(TASKS))
def test_triton_config_parses_into_tritons_model_config(name: str) -> None:
    task = TASKS[name]
    config = parse_config(format_config(export.triton_config(task)))
    assert config.name == name
    assert config.platform == "pytorch_libtorch"
    assert config.max_batch_size == task.max_batch_size
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("INPUT__0", model_config_pb2.TYPE_FP32, [task.in_features])
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
        ("OUTPUT__0", model_config_pb2.TYPE_FP32, [task.out_features])
    ]
    assert config.dynamic_batching.max_queue_delay_microseconds == task.max_queue_delay_us
    assert config.version_policy.HasField("all")


def test_roundtrip_is_verified_and_a_mismatch_is_an_error(tmp_path: Path) -> None:
    splits = data.load_iris(seed=0)
    model = build_model(IRIS, splits.train)
    path = tmp_path / "model.pt"
    export.script_model(model, path)
    assert export.verify_roundtrip(model, path, splits.test.x.repeat(3, 1)) <= 1e-5
    with torch.no_grad():
        model.net[0].bias += 1.0  # the eager model drifts away from the artifact
    with pytest.raises(export.ExportMismatch):
        export.verify_roundtrip(model, path, splits.test.x.repeat(3, 1))


def test_onnx_export_is_verified_and_a_mismatch_is_an_error(tmp_path: Path) -> None:
    splits = data.load_iris(seed=0)
    model = build_model(IRIS, splits.train)
    path = tmp_path / "model.onnx"
    export.export_onnx(model, path, splits.test.x)
    assert export.verify_onnx(model, path, splits.test.x.repeat(3, 1)) <= 1e-5
    with torch.no_grad():
        model.net[0].bias += 1.0
    with pytest.raises(export.ExportMismatch, match="ONNX"):
        export.verify_onnx(model, path, splits.test.x.repeat(3, 1))


def test_onnx_file_has_a_dynamic_batch_and_tritons_tensor_names(tmp_path: Path) -> None:
    splits = data.load_iris(seed=0)
    model = build_model(IRIS, splits.train).eval()
    path = tmp_path / "model.onnx"
    export.export_onnx(model, path, splits.test.x)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["INPUT__0"]
    assert [o.name for o in graph.output] == ["OUTPUT__0"]
    batch, features = graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param
    assert not batch.HasField("dim_value")
    assert features.dim_value == 4
    assert not any(t.external_data for t in graph.initializer)  # one self-contained file
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for rows in (1, 7, 300):
        x = torch.rand(rows, 4) * 8
        (answer,) = session.run(None, {"INPUT__0": x.numpy()})
        with torch.inference_mode():
            expected = model(x).numpy()
        assert answer.shape == (rows, 3)
        assert abs(answer - expected).max() <= 1e-5  # normalisation and softmax inside


def test_exported_module_needs_only_torch_jit(tmp_path: Path) -> None:
    splits = data.load_iris(seed=0)
    model = build_model(IRIS, splits.train)
    path = tmp_path / "model.pt"
    export.script_model(model, path)
    loaded = jit.load(path)
    for batch in (1, 7, 64):
        assert loaded(torch.rand(batch, 4)).shape == (batch, 3)


def _staging_with_model(model_dir: Path) -> Path:
    staging = layout.new_staging_dir(model_dir)
    (staging / "model.pt").write_bytes(b"weights")
    return staging


def test_publish_takes_the_next_version_and_never_overwrites(tiny_repo: Path) -> None:
    card = ModelCard.model_validate_json((tiny_repo / "iris" / "1" / "card.json").read_text())
    model_dir = tiny_repo.parent / "publish-test" / "iris"
    first, first_card = export.publish(_staging_with_model(model_dir), model_dir, card)
    (model_dir / "7").mkdir()
    (model_dir / "7" / "model.pt").write_bytes(b"keep me")
    second, second_card = export.publish(_staging_with_model(model_dir), model_dir, card)
    assert (first.name, first_card.version) == ("1", 1)
    assert (second.name, second_card.version) == ("8", 8)
    assert (model_dir / "7" / "model.pt").read_bytes() == b"keep me"
    assert ModelCard.model_validate_json((second / "card.json").read_text()).version == 8
    assert not list(model_dir.glob(".staging-*"))
