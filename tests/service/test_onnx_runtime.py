"""ONNX Runtime reads graphs, not code; but a graph may name files for its weights, and any
that lies outside the version directory is refused before ONNX Runtime opens the graph."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from service.onnx_runtime import ExternalDataOutside, OnnxRuntime, check_external_data

WEIGHTS = np.arange(4, dtype=np.float32)


def adds_external_weights(version_dir: Path, location: str) -> Path:
    """`INPUT__0 + w` with `w` read from the external file `location` (as written there)."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [4], WEIGHTS)
    weights.ClearField("float_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        weights.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT__0", "w"], ["OUTPUT__0"])],
        "external",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, ["batch", 4])],
        initializer=[weights],
    )
    path = version_dir / "model.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def version_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "repo" / "model" / "1"
    directory.mkdir(parents=True)
    (tmp_path / "secret.bin").write_bytes(WEIGHTS.tobytes())
    return directory


def test_external_weights_inside_the_version_directory_load_and_run(version_dir: Path) -> None:
    (version_dir / "weights").mkdir()
    (version_dir / "weights" / "w.bin").write_bytes(WEIGHTS.tobytes())
    runtime = OnnxRuntime.load(adds_external_weights(version_dir, "weights/w.bin"), 4, 4)
    answer = runtime.run_batch([np.zeros((2, 4), dtype=np.float32)])
    np.testing.assert_array_equal(answer, [WEIGHTS, WEIGHTS])


@pytest.mark.parametrize(
    "location",
    ["../../../secret.bin", "weights/../../../../secret.bin", "", "."],
)
def test_external_weights_that_leave_the_directory_are_refused(
    version_dir: Path, location: str
) -> None:
    path = adds_external_weights(version_dir, location)
    with pytest.raises(ExternalDataOutside, match="outside its version directory"):
        OnnxRuntime.load(path, 4, 4)


def test_an_absolute_path_is_refused(version_dir: Path) -> None:
    secret = version_dir.parents[2] / "secret.bin"
    with pytest.raises(ExternalDataOutside, match=r"'w' names external data"):
        check_external_data(adds_external_weights(version_dir, str(secret)))


def test_a_symbolic_link_out_of_the_directory_is_refused(version_dir: Path) -> None:
    os.symlink(version_dir.parents[2] / "secret.bin", version_dir / "w.bin")
    with pytest.raises(ExternalDataOutside):
        check_external_data(adds_external_weights(version_dir, "w.bin"))


def test_external_data_in_a_subgraph_is_checked(version_dir: Path) -> None:
    written = adds_external_weights(version_dir, "../../../secret.bin")
    inner = onnx.load(str(written), load_external_data=False).graph
    inner.ClearField("input")  # a branch reads the outer graph's input
    condition = helper.make_tensor("c", TensorProto.BOOL, [], [True])
    node = helper.make_node("If", ["c"], ["OUTPUT__0"], then_branch=inner, else_branch=inner)
    graph = helper.make_graph(
        [node],
        "outer",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, ["batch", 4])],
        initializer=[condition],
    )
    path = version_dir / "model.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ExternalDataOutside):
        check_external_data(path)


def test_external_data_that_names_no_location_is_refused(version_dir: Path) -> None:
    path = adds_external_weights(version_dir, "w.bin")
    model = onnx.load(str(path), load_external_data=False)
    (weights,) = model.graph.initializer
    kept = [entry for entry in weights.external_data if entry.key != "location"]
    weights.ClearField("external_data")
    weights.external_data.extend(kept)
    path.write_bytes(model.SerializeToString())
    with pytest.raises(
        ExternalDataOutside,
        match=r"^tensor 'w' names external data '' outside its version directory$",
    ):
        check_external_data(path)


def test_external_data_in_a_list_of_subgraphs_is_checked(version_dir: Path) -> None:
    """An attribute may hold several graphs (type GRAPHS); each one is read."""
    written = adds_external_weights(version_dir, "../../../secret.bin")
    inner = onnx.load(str(written), load_external_data=False).graph
    clean = helper.make_graph([], "clean", [], [])
    node = helper.make_node("Branches", ["INPUT__0"], ["OUTPUT__0"], domain="fixture")
    node.attribute.append(helper.make_attribute("branches", [clean, inner]))
    graph = helper.make_graph(
        [node],
        "outer",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, ["batch", 4])],
    )
    path = version_dir / "model.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ExternalDataOutside, match=r"^tensor 'w' names external data"):
        check_external_data(path)
