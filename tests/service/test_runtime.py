"""The runtime seam: each backend stacks a batch into its staging buffer once, answers one
output row per input row or fails the batch, and both give the same answers for every bundled
model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from modelrepo import layout, torchscript
from modelrepo.card import ModelCard
from service.onnx_runtime import OnnxRuntime
from service.runtime import (
    OutputMismatch,
    RuntimeUnavailable,
    inline_rows,
    installed,
    open_runtime,
    warm_up,
)
from service.torchscript_runtime import TorchScriptRuntime
from tests.conftest import MODELS_DIR


def load_iris(device: str) -> TorchScriptRuntime:
    """The first bundled iris version (read in place: nothing writes to it)."""
    runtime = TorchScriptRuntime.load(MODELS_DIR / "iris" / "1" / "model.pt", device, 64, 4)
    warm_up(runtime)
    return runtime


def blocks(features: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((n, features), dtype=np.float32) * 5 for n in (1, 3, 2)]


def test_blocks_are_stacked_into_one_forward_pass() -> None:
    runtime = load_iris("cpu")
    outputs = runtime.run_batch(blocks())
    with torch.inference_mode():
        expected = runtime.module(torch.from_numpy(np.concatenate(blocks()))).numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-6)
    assert not runtime._staging.is_pinned()


def test_the_staging_buffer_is_float32_whatever_torchs_default_dtype() -> None:
    """torch's default dtype is process-wide (another library in the process may set it): the
    staging buffer stays the float32 that the model's weights take and that
    SERVE_MAX_STAGING_BYTES counts, and rows of another dtype are cast into it."""
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        runtime = TorchScriptRuntime.load(MODELS_DIR / "iris" / "1" / "model.pt", "cpu", 8, 4)
        outputs = runtime.run_batch([block.astype(np.float64) for block in blocks()])
    finally:
        torch.set_default_dtype(default)
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, load_iris("cpu").run_batch(blocks()), rtol=1e-6)


def test_a_batch_above_the_staging_buffer_is_refused() -> None:
    runtime = TorchScriptRuntime.load(MODELS_DIR / "iris" / "1" / "model.pt", "cpu", 5, 4)
    with pytest.raises(ValueError, match="batch of 6 rows exceeds max_batch_size"):
        runtime.run_batch(blocks())


def bundled_with_onnx() -> list[Path]:
    """Every bundled version that carries an ONNX file beside its TorchScript one."""
    return [
        version_dir
        for name in layout.model_names(MODELS_DIR)
        for version_dir in layout.version_dirs(MODELS_DIR / name)
        if (version_dir / layout.ONNX_FILE).is_file()
    ]


def test_every_bundled_model_has_an_onnx_version() -> None:
    assert {path.parent.name for path in bundled_with_onnx()} == set(layout.model_names(MODELS_DIR))


@pytest.mark.parametrize("version_dir", bundled_with_onnx(), ids=lambda p: p.parent.name)
def test_both_runtimes_answer_the_same_rows(version_dir: Path) -> None:
    card = ModelCard.model_validate_json((version_dir / layout.CARD_FILE).read_text())
    features = card.input.features
    rng = np.random.default_rng(1)
    if card.input.image is not None:  # pixels in [0, 1]
        rows = rng.random((300, features), dtype=np.float32)
    else:  # the training data's scale: standard normal features (iris: cm, 0-8)
        rows = np.abs(rng.standard_normal((300, features), dtype=np.float32)) * 3
    answers = {}
    for name, file_name in (("torchscript", layout.MODEL_FILE), ("onnxruntime", layout.ONNX_FILE)):
        runtime = open_runtime(name, version_dir / file_name, "cpu", 300, features, 1)
        assert runtime.name == name
        answers[name] = runtime.run_batch([rows[:1], rows[1:64], rows[64:]])
    assert answers["onnxruntime"].shape == (300, card.output.width)
    assert np.abs(answers["onnxruntime"] - answers["torchscript"]).max() <= 1e-5


class DropsLastRow(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:-1]


class Scalar(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (DropsLastRow(), "the model returned 5 output rows for 6 input rows"),
        (Scalar(), "the model returned a scalar for 6 input rows"),
    ],
)
def test_a_torchscript_model_that_answers_other_rows_fails_the_batch(
    tmp_path: Path, module: nn.Module, message: str
) -> None:
    path = tmp_path / "model.pt"
    torchscript.save(torchscript.script(module), path)
    runtime = TorchScriptRuntime.load(path, "cpu", 8, 4)
    with pytest.raises(OutputMismatch, match=message):
        runtime.run_batch(blocks())


def onnx_graph(path: Path, *nodes: onnx.NodeProto, output_shape: list, initializers=()) -> Path:
    """A one-input, one-output float graph written to `path`."""
    graph = helper.make_graph(
        list(nodes),
        "fixture",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, output_shape)],
        initializer=list(initializers),
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def drops_last_row(path: Path) -> Path:
    bounds = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("s", 0), ("e", -1))]
    node = helper.make_node("Slice", ["INPUT__0", "s", "e"], ["OUTPUT__0"])
    return onnx_graph(path, node, output_shape=["rows", 4], initializers=bounds)


def scalar(path: Path) -> Path:
    node = helper.make_node("ReduceSum", ["INPUT__0"], ["OUTPUT__0"], keepdims=0)
    return onnx_graph(path, node, output_shape=[])


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (drops_last_row, "the model returned 5 output rows for 6 input rows"),
        (scalar, "the model returned a scalar for 6 input rows"),
    ],
)
def test_an_onnx_model_that_answers_other_rows_fails_the_batch(
    tmp_path: Path, write, message: str
) -> None:
    runtime = OnnxRuntime.load(write(tmp_path / "model.onnx"), 8, 4)
    with pytest.raises(OutputMismatch, match=message):
        runtime.run_batch(blocks())


def test_an_onnx_graph_of_another_width_is_refused(tmp_path: Path) -> None:
    path = onnx_graph(
        tmp_path / "model.onnx",
        helper.make_node("Identity", ["INPUT__0"], ["OUTPUT__0"]),
        output_shape=["batch", 4],
    )
    with pytest.raises(
        ValueError, match=r"^the graph takes inputs of shape \['batch', 4\], the card \[-1, 5\]$"
    ):
        OnnxRuntime.load(path, 8, 5)


def test_an_onnx_graph_of_another_rank_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT__0"], ["OUTPUT__0"])],
        "images",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 1, 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, ["batch", 1, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "model.onnx"))
    with pytest.raises(ValueError, match=r"^the graph takes inputs of shape \['batch', 1, 4\]"):
        OnnxRuntime.load(tmp_path / "model.onnx", 8, 4)


def test_an_onnx_graph_of_two_outputs_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT__0"], [name]) for name in ("OUTPUT__0", "OUTPUT__1")],
        "two",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4])
            for n in ("OUTPUT__0", "OUTPUT__1")
        ],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "model.onnx"))
    with pytest.raises(ValueError, match=r"^the graph must have one input and one output$"):
        OnnxRuntime.load(tmp_path / "model.onnx", 8, 4)


def test_an_onnx_session_runs_sequentially_on_one_thread_logging_errors_only() -> None:
    runtime = OnnxRuntime.load(MODELS_DIR / "iris" / "2" / layout.ONNX_FILE, 8, 4)
    options = runtime.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    assert options.log_severity_level == 3  # ONNX Runtime's warnings are not the operator's
    assert runtime.session.get_providers() == ["CPUExecutionProvider"]


def test_torchscript_runs_on_its_device_with_the_threads_asked_for() -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        runtime = TorchScriptRuntime.load(MODELS_DIR / "iris" / "1" / "model.pt", "cpu", 8, 4)
        assert (runtime.device, torch.get_num_threads()) == ("cpu", 1)  # one by default
        open_runtime("torchscript", MODELS_DIR / "iris" / "1" / "model.pt", "cpu", 8, 4, 3)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)


def test_a_missing_backend_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.runtime.installed", lambda name: name != "torchscript")
    with pytest.raises(
        RuntimeUnavailable, match=r"model.pt needs torch: pip install 'mlp-serve\[torch\]'"
    ):
        open_runtime("torchscript", tmp_path / "model.pt", "cpu", 8, 4, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_batch_syncs_once_through_pinned_staging() -> None:
    runtime = load_iris("cuda")
    assert runtime._staging.is_pinned()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs = runtime.run_batch(blocks())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1  # the copy of the outputs back to the host
    cpu = load_iris("cpu").run_batch(blocks())
    np.testing.assert_allclose(outputs, cpu, rtol=1e-4, atol=1e-6)


class CountedOnnx(OnnxRuntime):
    """The bundled iris ONNX graph, recording the rows of every forward pass."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.passes: list[int] = []

    def run_batch(self, blocks):
        self.passes.append(sum(len(block) for block in blocks))
        return super().run_batch(blocks)


def counted_iris(max_rows: int) -> CountedOnnx:
    return CountedOnnx.load(MODELS_DIR / "iris" / "2" / layout.ONNX_FILE, max_rows, 4)


@pytest.mark.parametrize(
    ("max_rows", "passes"), [(64, [1, 2, 8, 32, 64]), (32, [1, 2, 8, 32]), (5, [1, 2, 5]), (1, [1])]
)
def test_warm_up_runs_the_sizes_up_to_the_max_once_each(max_rows: int, passes: list) -> None:
    runtime = counted_iris(max_rows)
    warm_up(runtime)
    assert runtime.passes == passes


def test_a_batch_of_exactly_the_staging_rows_runs() -> None:
    runtime = counted_iris(6)
    assert runtime.run_batch(blocks()).shape == (6, 3)


@pytest.mark.parametrize(("max_rows", "rows"), [(64, 32), (31, 8), (8, 8), (7, 2), (1, 1)])
def test_inline_rows_is_the_largest_warm_up_size_within_the_limit(max_rows: int, rows: int) -> None:
    runtime = counted_iris(max_rows)
    assert inline_rows(runtime, limit_s=60.0, repeats=3) == rows
    sizes = [s for s in (1, 2, 8, 32) if s <= max_rows]
    assert runtime.passes == [s for s in sizes for _ in range(3)]  # each timed three times


def test_inline_rows_stops_at_the_first_size_over_the_limit() -> None:
    runtime = counted_iris(64)
    assert inline_rows(runtime, limit_s=1e-12) == 0  # no forward pass is that short
    assert runtime.passes == [1] * 5  # the default five repeats, then it stops


def test_no_limit_or_a_torchscript_runtime_never_runs_inline() -> None:
    onnx_runtime = counted_iris(8)
    assert inline_rows(onnx_runtime, limit_s=0.0) == 0
    assert onnx_runtime.passes == []
    assert inline_rows(load_iris("cpu"), limit_s=60.0) == 0


def test_a_missing_onnxruntime_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert installed("onnxruntime")
    assert installed("torchscript")
    monkeypatch.setattr("service.runtime.installed", lambda name: name != "onnxruntime")
    with pytest.raises(
        RuntimeUnavailable, match=r"^model.onnx needs onnxruntime: pip install 'onnxruntime'$"
    ):
        open_runtime("onnxruntime", tmp_path / "model.onnx", "cpu", 8, 4, 1)


def test_a_package_whose_lookup_fails_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str) -> None:
        raise ValueError(f"{name}.__spec__ is None")

    monkeypatch.setattr("importlib.util.find_spec", refuse)
    assert not installed("onnxruntime")
