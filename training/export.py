"""TorchScript export, round-trip verification, the card and the Triton model configuration.

A version directory is assembled in a staging directory next to its final place and renamed
into place in one step, so a version is never half-written and never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch

from service import jit
from service.cards import (
    CARD_FILE,
    CONFIG_FILE,
    CURVES_FILE,
    INPUT_NAME,
    MODEL_FILE,
    OUTPUT_NAME,
    Bar,
    DatasetInfo,
    InputSpec,
    ModelCard,
    OutputSpec,
    TrainingInfo,
)
from training.nets import ServingModel
from training.tasks import TaskSpec

VERIFY_BATCH_SIZES = (1, 64)
VERIFY_TOLERANCE = 1e-5


class ExportMismatch(Exception):
    """The reloaded TorchScript artifact disagrees with the eager model."""


def script_model(model: ServingModel, path: Path) -> None:
    """Compile the eval-mode CPU model to TorchScript and write it to `path`."""
    jit.save(jit.script(model.cpu().eval()), path)


def verify_roundtrip(model: ServingModel, path: Path, sample: torch.Tensor) -> float:
    """Reload `path` with torch.jit alone and compare with the eager model; return max |diff|."""
    reloaded = jit.load(path, "cpu")
    model = model.cpu().eval()
    worst = 0.0
    with torch.inference_mode():
        for batch_size in VERIFY_BATCH_SIZES:
            batch = sample[:batch_size].cpu()
            worst = max(worst, (reloaded(batch) - model(batch)).abs().max().item())
    if worst > VERIFY_TOLERANCE:
        raise ExportMismatch(f"exported model differs from the eager one by {worst:.3g}")
    return worst


def input_spec(task: TaskSpec) -> InputSpec:
    return InputSpec(
        name=INPUT_NAME,
        shape=[-1, task.in_features],
        feature_names=list(task.feature_names) if task.feature_names else None,
        image=task.image,
        description=task.input_description,
    )


def output_spec(task: TaskSpec) -> OutputSpec:
    if task.kind == "classification":
        description = "float32 (N, classes): class probabilities (softmax), rows sum to 1"
    else:
        description = f"float32 (N, 1): the predicted {task.value_name}"
    return OutputSpec(
        name=OUTPUT_NAME,
        shape=[-1, task.out_features],
        class_names=list(task.class_names) if task.class_names else None,
        value_name=task.value_name,
        description=description,
    )


def build_card(
    task: TaskSpec,
    version: int,
    sha256: str,
    metrics: dict[str, float],
    dataset_sizes: dict[str, int],
    training: TrainingInfo,
) -> ModelCard:
    bars = [
        Bar(
            metric=bar.metric,
            op=bar.op,
            threshold=bar.threshold,
            value=metrics[bar.metric],
            passed=bar.passed(metrics[bar.metric]),
        )
        for bar in task.bars
    ]
    return ModelCard(
        name=task.name,
        version=version,
        task=task.kind,
        description=task.description,
        input=input_spec(task),
        output=output_spec(task),
        metrics=metrics,
        bars=bars,
        dataset=DatasetInfo(description=task.dataset_description, sizes=dataset_sizes),
        training=training,
        sha256=sha256,
        torch_version=torch.__version__,
        created_at=datetime.now(UTC),
    )


def triton_config(task: TaskSpec) -> str:
    """`config.pbtxt` in Triton's text format, for its PyTorch (libtorch) backend."""
    preferred = ""
    if task.preferred_batch_sizes:
        sizes = ", ".join(str(size) for size in task.preferred_batch_sizes)
        preferred = f"\n  preferred_batch_size: [ {sizes} ]"
    return f"""# Written by mlp-train. Triton's PyTorch backend serves this directory unchanged.
name: "{task.name}"
platform: "pytorch_libtorch"
max_batch_size: {task.max_batch_size}
version_policy: {{ all {{ }} }}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {task.in_features} ]
  }}
]
output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {task.out_features} ]
  }}
]
dynamic_batching {{{preferred}
  max_queue_delay_microseconds: {task.max_queue_delay_us}
}}
"""


def write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
        file.write(text)
    os.replace(file.name, path)


def existing_versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(
        int(entry.name) for entry in model_dir.iterdir() if entry.is_dir() and entry.name.isdigit()
    )


def publish(staging: Path, model_dir: Path, card: ModelCard) -> tuple[Path, ModelCard]:
    """Move `staging` to the next free version directory; never replaces an existing one."""
    while True:
        version = max(existing_versions(model_dir), default=0) + 1
        card = card.model_copy(update={"version": version})
        (staging / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n")
        target = model_dir / str(version)
        try:
            staging.rename(target)  # fails if another run claimed this version first
        except OSError:
            if not target.exists():
                raise
            continue
        return target, card


def new_staging_dir(model_dir: Path) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


__all__ = [
    "CONFIG_FILE",
    "CURVES_FILE",
    "MODEL_FILE",
    "ExportMismatch",
    "build_card",
    "discard",
    "new_staging_dir",
    "publish",
    "script_model",
    "triton_config",
    "verify_roundtrip",
    "write_atomically",
]
