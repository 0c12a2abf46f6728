"""ONNX Runtime on the CPU: the same model as an ONNX graph, without torch.

ONNX Runtime reads graphs, not code, but a graph may name external files for its weights: any
that points outside the version directory (an absolute path, `..`, a symbolic link out) is
refused before ONNX Runtime opens the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

from service.runtime import RuntimeName, check_rows, stack_into


class ExternalDataOutside(Exception):
    """The graph names a weights file outside its own directory."""


class OnnxRuntime:
    """An ONNX Runtime session on one input and one output, with a staging buffer."""

    name: RuntimeName = "onnxruntime"
    platform = "onnxruntime_onnx"
    device = "cpu"
    inline_safe = True

    def __init__(self, session: onnxruntime.InferenceSession, max_rows: int, features: int) -> None:
        self.session = session
        self.features = features
        (self._input,) = (i.name for i in session.get_inputs())
        (self._output,) = (o.name for o in session.get_outputs())
        self._staging = np.empty((max_rows, features), dtype=np.float32)
        # The binding under the Python wrapper, whose `run` checks the feed's names again on
        # every call (a third of a batch-1 iris pass); they were checked once, above.
        self._run = getattr(session, "_sess", session).run

    @classmethod
    def load(cls, path: Path, max_rows: int, features: int, threads: int = 1) -> OnnxRuntime:
        check_external_data(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: its warnings are not the operator's
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError("the graph must have one input and one output")
        shape = inputs[0].shape
        if len(shape) != 2 or shape[1] != features:
            raise ValueError(f"the graph takes inputs of shape {shape}, the card [-1, {features}]")
        return cls(session, max_rows, features)

    @property
    def max_rows(self) -> int:
        return len(self._staging)

    def run_batch(self, blocks: Sequence[np.ndarray]) -> np.ndarray:
        """Stack the blocks once and run them (ONNX Runtime releases the GIL while it runs);
        a lone float32 block that fits (a request alone, from the codecs) runs as it is."""
        inputs = lone_block(blocks, self.max_rows)
        if inputs is None:
            inputs = stack_into(self._staging, blocks)
        (outputs,) = self._run([self._output], {self._input: inputs}, None)
        return check_rows(outputs, len(inputs))


def lone_block(blocks: Sequence[np.ndarray], max_rows: int) -> np.ndarray | None:
    """The only block, when ONNX Runtime can take it without the copy into staging."""
    if len(blocks) != 1:
        return None
    block = blocks[0]
    return block if block.dtype == np.float32 and len(block) <= max_rows else None


def check_external_data(path: Path) -> None:
    """ExternalDataOutside unless every external weights file lies inside `path`'s directory."""
    graph = onnx.load(str(path), load_external_data=False).graph
    base = path.parent.resolve()
    for tensor in tensors_of(graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if Path(location).is_absolute() or target == base or not target.is_relative_to(base):
            raise ExternalDataOutside(
                f"tensor {tensor.name!r} names external data {location!r} outside its version "
                "directory"
            )


def tensors_of(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers, sparse ones, and those in node attributes and
    subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
            if attribute.HasField("g"):
                yield from tensors_of(attribute.g)
            for subgraph in attribute.graphs:
                yield from tensors_of(subgraph)
