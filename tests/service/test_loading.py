"""Loading one version: SERVE_RUNTIME picks the runtime and so the file, whose hash is checked
against the card and the trusted list before anything parses it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from modelrepo.config import BatchingConfig
from modelrepo.layout import CARD_FILE, MODEL_FILE, ONNX_FILE, sha256_of
from service.loading import BackendMissing, LoadError, LoadPolicy, load_version, unchanged
from tests.conftest import MODELS_DIR

BATCHING = BatchingConfig(max_batch_size=8, max_queue_delay_s=0.0)


def policy(**changes) -> LoadPolicy:
    return LoadPolicy(**{"device": "cpu", "warmup": True, "max_staging_bytes": 1 << 20} | changes)


@pytest.fixture
def iris(tiny_repo: Path, tmp_path: Path) -> Path:
    """A copy of a freshly trained iris version: model.pt and model.onnx, both in its card."""
    version_dir = tmp_path / "iris" / "1"
    shutil.copytree(tiny_repo / "iris" / "1", version_dir)
    return version_dir


@pytest.fixture
def torchscript_only(tmp_path: Path) -> Path:
    """The first bundled iris version, written before ONNX files existed."""
    version_dir = tmp_path / "iris" / "1"
    shutil.copytree(MODELS_DIR / "iris" / "1", version_dir)
    return version_dir


def test_auto_serves_onnx_on_the_cpu_where_the_version_has_it(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy())
    assert (model.runtime.name, model.runtime.device, model.file) == (
        "onnxruntime",
        "cpu",
        ONNX_FILE,
    )
    assert model.digest == sha256_of(iris / ONNX_FILE)
    assert model.config().platform == "onnxruntime_onnx"


def test_auto_serves_torchscript_where_there_is_no_onnx_file(torchscript_only: Path) -> None:
    model = load_version(torchscript_only, "iris", BATCHING, policy())
    assert (model.runtime.name, model.file) == ("torchscript", MODEL_FILE)
    assert model.config().platform == "pytorch_libtorch"


def test_auto_serves_torchscript_where_onnxruntime_is_not_installed(
    iris: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.loading.installed", lambda name: name != "onnxruntime")
    assert load_version(iris, "iris", BATCHING, policy()).runtime.name == "torchscript"


def test_torchscript_is_served_when_asked_for(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy(runtime="torchscript"))
    assert (model.runtime.name, model.digest) == ("torchscript", sha256_of(iris / MODEL_FILE))


def test_onnxruntime_without_an_onnx_file_is_refused(torchscript_only: Path) -> None:
    with pytest.raises(
        LoadError, match=r"SERVE_RUNTIME=onnxruntime, but the card lists no model\.onnx"
    ):
        load_version(torchscript_only, "iris", BATCHING, policy(runtime="onnxruntime"))


def test_onnxruntime_on_cuda_is_refused(iris: Path) -> None:
    with pytest.raises(LoadError, match="ONNX Runtime serves on the CPU here, not cuda"):
        load_version(iris, "iris", BATCHING, policy(runtime="onnxruntime", device="cuda"))


def test_the_onnx_file_must_match_the_card(iris: Path) -> None:
    (iris / ONNX_FILE).write_bytes((iris / ONNX_FILE).read_bytes() + b"\0")
    with pytest.raises(LoadError, match=r"sha256 of model.onnx is [0-9a-f]{64}, the card says"):
        load_version(iris, "iris", BATCHING, policy())
    assert load_version(iris, "iris", BATCHING, policy(runtime="torchscript")).file == MODEL_FILE


def test_the_trusted_list_is_checked_for_the_file_that_runs(iris: Path) -> None:
    only_torchscript = policy(trusted=frozenset({sha256_of(iris / MODEL_FILE)}))
    with pytest.raises(LoadError, match=r"sha256 of model.onnx \([0-9a-f]{64}\) is not in the"):
        load_version(iris, "iris", BATCHING, only_torchscript)
    trusted = policy(trusted=frozenset({sha256_of(iris / ONNX_FILE)}))
    assert load_version(iris, "iris", BATCHING, trusted).file == ONNX_FILE


def test_a_missing_onnx_file_that_the_card_lists_is_an_error(iris: Path) -> None:
    (iris / ONNX_FILE).unlink()
    with pytest.raises(LoadError, match=r"^model\.onnx is missing$"):
        load_version(iris, "iris", BATCHING, policy())


def test_a_corrupt_onnx_file_is_a_load_error(iris: Path) -> None:
    (iris / ONNX_FILE).write_bytes(b"not a graph")
    card = json.loads((iris / CARD_FILE).read_text())
    card["files"][ONNX_FILE] = sha256_of(iris / ONNX_FILE)
    (iris / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(LoadError, match=r"^model\.onnx cannot be loaded: "):
        load_version(iris, "iris", BATCHING, policy())


def test_torchscript_without_torch_says_what_to_install(
    torchscript_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.runtime.installed", lambda name: name != "torchscript")
    with pytest.raises(
        BackendMissing, match=r"^model.pt needs torch: pip install 'mlp-serve\[torch\]'$"
    ):
        load_version(torchscript_only, "iris", BATCHING, policy())


def test_a_version_is_unchanged_until_the_file_it_runs_changes(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy())
    assert unchanged(model, iris, BATCHING)
    assert not unchanged(model, iris, BatchingConfig(max_batch_size=4, max_queue_delay_s=0.0))
    (iris / ONNX_FILE).write_bytes(b"changed")
    assert not unchanged(model, iris, BATCHING)


def test_a_short_onnx_forward_pass_may_run_inline(iris: Path) -> None:
    generous = policy(inline_max_s=10.0)
    assert load_version(iris, "iris", BATCHING, generous).inline_rows == 8  # sizes 1, 2, 8
    assert load_version(iris, "iris", BATCHING, policy()).inline_rows == 0  # no limit: never


def test_torchscript_and_a_queue_delay_never_run_inline(iris: Path) -> None:
    generous = policy(inline_max_s=10.0)
    torchscript = load_version(
        iris, "iris", BATCHING, policy(runtime="torchscript", inline_max_s=10.0)
    )
    assert torchscript.inline_rows == 0  # a module may run code that waits
    waiting = BatchingConfig(max_batch_size=8, max_queue_delay_s=0.001)
    assert load_version(iris, "iris", waiting, generous).inline_rows == 0  # it asks to wait


def test_a_graph_onnx_runtime_refuses_is_a_load_error_without_the_path(iris: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["INPUT__0"], ["OUTPUT__0"])],
        "unknown",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, ["batch", 3])],
    )
    onnx.save(helper.make_model(graph), str(iris / ONNX_FILE))
    card = json.loads((iris / CARD_FILE).read_text())
    card["files"][ONNX_FILE] = sha256_of(iris / ONNX_FILE)
    (iris / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(LoadError, match=r"^model\.onnx cannot be loaded: ") as refused:
        load_version(iris, "iris", BATCHING, policy())
    assert "NoSuchOperator" in str(refused.value)
    assert str(iris.parent.parent) not in str(refused.value)
