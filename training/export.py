"""TorchScript and ONNX export, each verified against the eager model, the card and the Triton
model configuration: what one trained model becomes in the repository (whose format
`modelrepo` owns)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from modelrepo import layout
from modelrepo import torchscript as jit
from modelrepo.card import (
    INPUT_NAME,
    NAME_PATTERN,
    OUTPUT_NAME,
    Bar,
    DatasetInfo,
    InputSpec,
    ModelCard,
    OutputSpec,
    TrainingInfo,
)
from modelrepo.config import ModelConfig, read_config, write_config
from modelrepo.layout import CARD_FILE, CONFIG_FILE
from training.nets import ServingModel
from training.tasks import TaskSpec

PLATFORM = "pytorch_libtorch"
CONFIG_COMMENT = "Written by mlp-train. Triton's PyTorch backend serves this directory unchanged."
VERIFY_BATCH_SIZES = (1, 64)
# Absolute for outputs up to 1 in magnitude (probabilities, small values), relative above: a
# regression target in the hundreds differs by float32's rounding, about 3e-5, at any export.
VERIFY_TOLERANCE = 1e-5


class ExportMismatch(Exception):
    """A reloaded artifact (TorchScript or ONNX) disagrees with the eager model."""


class ShapeConflict(Exception):
    """The model directory's config.pbtxt describes a model of other dims than the new one."""


def check_model_name(name: str) -> str:
    """`name` if it can name a model (its directory, a URL segment); ValueError says why not."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(
            f"{name!r} is not a model name: a lowercase letter, then lowercase letters, "
            "digits, '_' or '-'"
        )
    return name


def script_model(model: ServingModel, path: Path) -> None:
    """Compile the eval-mode CPU model to TorchScript and write it to `path`."""
    jit.save(jit.script(model.cpu().eval()), path)


def difference(answer: np.ndarray, expected: np.ndarray) -> float:
    """The largest |answer - expected|, divided by |expected| where that is above 1."""
    return float((np.abs(answer - expected) / np.maximum(np.abs(expected), 1.0)).max())


def verify_roundtrip(model: ServingModel, path: Path, sample: torch.Tensor) -> float:
    """Reload `path` with torch.jit alone and compare with the eager model; return the largest
    `difference`."""
    reloaded = jit.load(path, "cpu")
    model = model.cpu().eval()
    worst = 0.0
    with torch.inference_mode():
        for batch_size in VERIFY_BATCH_SIZES:
            batch = sample[:batch_size].cpu()
            worst = max(worst, difference(reloaded(batch).numpy(), model(batch).numpy()))
    if worst > VERIFY_TOLERANCE:
        raise ExportMismatch(f"exported model differs from the eager one by {worst:.3g}")
    return worst


def export_onnx(model: ServingModel, path: Path, sample: torch.Tensor) -> None:
    """The eval-mode CPU model as one self-contained ONNX file (torch.export's exporter), with a
    dynamic batch dimension and the tensor names of the TorchScript file."""
    model = model.cpu().eval()
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        model,
        (sample[:2].cpu(),),  # two rows: torch.export specialises a batch of one
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        optimize=True,
        verbose=False,
    )
    program.save(str(path), external_data=False)


def verify_onnx(model: ServingModel, path: Path, sample: torch.Tensor) -> float:
    """Run `path` with ONNX Runtime and compare with the eager model; return the largest
    `difference`."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = model.cpu().eval()
    worst = 0.0
    with torch.inference_mode():
        for batch_size in VERIFY_BATCH_SIZES:
            batch = sample[:batch_size].cpu()
            (answer,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})
            worst = max(worst, difference(answer, model(batch).numpy()))
    if worst > VERIFY_TOLERANCE:
        raise ExportMismatch(f"the ONNX model differs from the eager one by {worst:.3g}")
    return worst


def input_spec(task: TaskSpec, example: list[float] | None = None) -> InputSpec:
    return InputSpec(
        name=INPUT_NAME,
        shape=[-1, task.in_features],
        feature_names=list(task.feature_names) if task.feature_names else None,
        example=example,
        image=task.image,
        description=task.input_description,
    )


def typical_row(task: TaskSpec, model: ServingModel) -> list[float] | None:
    """The card's example row of a model with named per-feature columns: the training rows'
    mean, which its normalisation holds (6 significant digits); None for images."""
    if not task.feature_names or task.image is not None or not task.per_feature_norm:
        return None
    return [float(f"{value:.6g}") for value in model.normalize.mean.cpu().tolist()]


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
    files: dict[str, str],
    metrics: dict[str, float],
    dataset_sizes: dict[str, int],
    training: TrainingInfo,
    example: list[float] | None = None,
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
        input=input_spec(task, example),
        output=output_spec(task),
        metrics=metrics,
        bars=bars,
        dataset=DatasetInfo(
            description=task.dataset_description,
            sizes=dataset_sizes,
            source=task.dataset_source,
            target=task.target,
        ),
        training=training,
        sha256=files[layout.MODEL_FILE],
        files=files,
        torch_version=torch.__version__,
        created_at=datetime.now(UTC),
    )


def triton_config(task: TaskSpec) -> ModelConfig:
    """The Triton configuration of a task's model, for its PyTorch (libtorch) backend."""
    return ModelConfig(
        name=task.name,
        platform=PLATFORM,
        max_batch_size=task.max_batch_size,
        version_policy={"all": {}},
        input=[{"name": INPUT_NAME, "data_type": "TYPE_FP32", "dims": [task.in_features]}],
        output=[{"name": OUTPUT_NAME, "data_type": "TYPE_FP32", "dims": [task.out_features]}],
        dynamic_batching={"max_queue_delay_microseconds": task.max_queue_delay_us},
    )


def check_config_fits(task: TaskSpec, model_dir: Path) -> None:
    """A new version must have the dims of the model's configuration, which every version of
    the model shares: refuse one that would silently rewrite them (another model's name)."""
    config = read_config(model_dir / CONFIG_FILE)
    if config is None:
        return
    dims = ([list(t.dims) for t in config.input], [list(t.dims) for t in config.output])
    if dims != ([[task.in_features]], [[task.out_features]]):
        raise ShapeConflict(
            f"{model_dir} already holds a model with inputs {dims[0]} and outputs {dims[1]}, "
            f"not [[{task.in_features}]] and [[{task.out_features}]]: choose another name"
        )


def write_triton_config(task: TaskSpec, model_dir: Path) -> None:
    write_config(model_dir / CONFIG_FILE, triton_config(task), CONFIG_COMMENT)


def publish(staging: Path, model_dir: Path, card: ModelCard) -> tuple[Path, ModelCard]:
    """Move `staging` to the next free version, with the card naming that version."""
    cards: dict[int, ModelCard] = {}

    def write_card(directory: Path, version: int) -> None:
        cards[version] = card.model_copy(update={"version": version})
        (directory / CARD_FILE).write_text(cards[version].model_dump_json(indent=2) + "\n")

    version = layout.publish(staging, model_dir, write_card)
    return model_dir / str(version), cards[version]
