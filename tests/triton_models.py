"""Triton model directories as a user brings them: a TorchScript file, `config.pbtxt` written by
hand, `labels.txt`, and no card."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from modelrepo import torchscript as jit
from tests.conftest import MODELS_DIR

FEATURES, CLASSES = 4, 3
LABELS = ("cat", "dog", "fish")
INPUT, OUTPUT = "input__0", "output__0"
# Row i of the identity picks class i: an unambiguous answer per class.
ROWS = torch.eye(CLASSES, FEATURES).numpy()
CONFIG = f"""
platform: "pytorch_libtorch"
max_batch_size: 8
input [ {{ name: "{INPUT}" data_type: TYPE_FP32 dims: [ {FEATURES} ] }} ]
output [
  {{ name: "{OUTPUT}" data_type: TYPE_FP32 dims: [ {CLASSES} ] label_filename: "labels.txt" }}
]
"""

ONNX_CONFIG = """
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
"""


class Picker(nn.Module):
    """Softmax of 5 x the first CLASSES features (plus the version, to tell versions apart in
    the raw outputs)."""

    def __init__(self, version: int) -> None:
        super().__init__()
        self.linear = nn.Linear(FEATURES, CLASSES)
        with torch.no_grad():
            self.linear.weight.copy_(5 * torch.eye(CLASSES, FEATURES))
            self.linear.bias.fill_(float(version))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(rows), dim=1)


def write_torchscript(path: Path, version: int = 1, module: nn.Module | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    jit.save(jit.script((module or Picker(version)).eval()), path)
    return path


def write_triton_model(
    model_dir: Path,
    versions: tuple[int, ...] = (1,),
    config: str = CONFIG,
    labels: tuple[str, ...] | None = LABELS,
    file_name: str = "model.pt",
) -> Path:
    """`model_dir` as Triton's PyTorch backend reads it: config.pbtxt, labels.txt and one
    TorchScript file per version."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(config)
    if labels is not None:
        (model_dir / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    for version in versions:
        write_torchscript(model_dir / str(version) / file_name, version)
    return model_dir


def write_onnx_model(model_dir: Path, config: str = ONNX_CONFIG) -> Path:
    """The bundled iris graph (INPUT__0 (N, 4) -> OUTPUT__0 (N, 3)) as a card-less ONNX model."""
    (model_dir / "1").mkdir(parents=True)
    shutil.copy(MODELS_DIR / "iris" / "2" / "model.onnx", model_dir / "1" / "model.onnx")
    (model_dir / "config.pbtxt").write_text(config)
    return model_dir
