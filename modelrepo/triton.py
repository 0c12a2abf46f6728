"""A Triton model as it is: what `config.pbtxt` says of a version without a card.

Triton's PyTorch and ONNX Runtime backends serve a model directory from its configuration
alone: tensor names, data types and dims, the model file (`default_model_filename`), class
names from an output's `label_filename` (one label per line, in the model's directory), and
which versions serve (`version_policy`). This module turns that into the `ModelSpec` the
service serves, in one place, and refuses what the service cannot serve with a reason that
says what it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import ValidationError
from tritonclient.grpc import model_config_pb2

from modelrepo.card import MAX_WIDTH, InputSpec, ModelSpec, OutputSpec
from modelrepo.config import ModelConfig
from modelrepo.layout import MODEL_FILE, ONNX_FILE

Format = Literal["torchscript", "onnxruntime"]  # the runtime that reads the model file

SUPPORTED = "this server serves FP32 (N, features) -> (N, outputs) models"
PLATFORMS: dict[str, Format] = {
    "pytorch_libtorch": "torchscript",
    "onnxruntime_onnx": "onnxruntime",
}
BACKENDS: dict[str, Format] = {"pytorch": "torchscript", "onnxruntime": "onnxruntime"}
DEFAULT_FILES: dict[Format, str] = {"torchscript": MODEL_FILE, "onnxruntime": ONNX_FILE}
MAX_LABEL_BYTES = 16 << 20
DESCRIPTION = "served from config.pbtxt: this model has no card"


class UnsupportedModel(ValueError):
    """config.pbtxt describes a model this server does not serve; the message says why."""


@dataclass(frozen=True)
class TritonModel:
    """One version of a card-less model: the spec it is served with, the runtime that reads
    its file and that file's name in the version directory."""

    spec: ModelSpec
    format: Format
    file_name: str


def triton_model(config: ModelConfig, model_dir: Path, version: int) -> TritonModel:
    """The version `version` of the card-less model in `model_dir`, as `config` describes it."""
    model_format = format_of(config)
    file_name = config.default_model_filename or DEFAULT_FILES[model_format]
    if "\0" in file_name or PurePosixPath(file_name).name != file_name or file_name in {".", ".."}:
        raise UnsupportedModel("default_model_filename must name a file of the version directory")
    return TritonModel(spec_of(config, model_dir, version), model_format, file_name)


def format_of(config: ModelConfig) -> Format:
    """TorchScript for Triton's PyTorch backend, ONNX Runtime for its ONNX Runtime backend."""
    if config.platform:
        if config.platform not in PLATFORMS:
            raise UnsupportedModel(
                f"platform {config.platform!r} is not served here: use pytorch_libtorch "
                "(TorchScript) or onnxruntime_onnx"
            )
        return PLATFORMS[config.platform]
    if config.backend in BACKENDS:
        return BACKENDS[config.backend]
    if config.backend:
        raise UnsupportedModel(
            f"backend {config.backend!r} is not served here: use pytorch or onnxruntime"
        )
    raise UnsupportedModel(
        'config.pbtxt names no platform: set platform: "pytorch_libtorch" (TorchScript) '
        'or "onnxruntime_onnx"'
    )


def spec_of(config: ModelConfig, model_dir: Path, version: int) -> ModelSpec:
    """Name, tensors and (from `label_filename`) class names; a classifier when labelled."""
    if len(config.input) != 1 or len(config.output) != 1:
        raise UnsupportedModel(
            f"{SUPPORTED}; config.pbtxt has {len(config.input)} inputs and "
            f"{len(config.output)} outputs"
        )
    (tensor_in,), (tensor_out,) = config.input, config.output
    features = width_of(tensor_in, config.max_batch_size)
    outputs = width_of(tensor_out, config.max_batch_size)
    labels = read_labels(model_dir, tensor_out, outputs) if tensor_out.label_filename else None
    try:
        return ModelSpec(
            name=model_dir.name,
            version=version,
            task="classification" if labels else "regression",
            description=DESCRIPTION,
            input=InputSpec(name=tensor_in.name, shape=[-1, features]),
            output=OutputSpec(
                name=tensor_out.name,
                shape=[-1, outputs],
                class_names=labels,
                value_name=None if labels else tensor_out.name,
            ),
        )
    except ValidationError as error:
        raise UnsupportedModel(f"{SUPPORTED}; {error.errors()[0]['msg']}") from None


def width_of(
    tensor: model_config_pb2.ModelInput | model_config_pb2.ModelOutput, max_batch_size: int
) -> int:
    """A tensor's features per row. With `max_batch_size` > 0 Triton leaves the batch out of
    `dims` ([features]); with 0 the dims are the whole shape, here [-1, features]."""
    data_type = model_config_pb2.DataType.Name(tensor.data_type)
    if data_type != "TYPE_FP32":
        raise UnsupportedModel(f"{SUPPORTED}; {tensor.name} is {data_type}")
    if tensor.HasField("reshape"):
        raise UnsupportedModel(f"{SUPPORTED}; {tensor.name} has a reshape")
    dims = list(tensor.dims)
    expected = "[features]" if max_batch_size > 0 else "[-1, features] (max_batch_size 0)"
    row = dims if max_batch_size > 0 else dims[1:]
    batch_ok = max_batch_size > 0 or dims[:1] == [-1]
    if not batch_ok or len(row) != 1 or not 0 < row[0] <= MAX_WIDTH:
        raise UnsupportedModel(
            f"{SUPPORTED}; {tensor.name} has dims {dims}, this server needs {expected} "
            f"with 1..{MAX_WIDTH} features"
        )
    return row[0]


def read_labels(model_dir: Path, tensor: model_config_pb2.ModelOutput, outputs: int) -> list[str]:
    """The class names in the output's label file, one per line, as Triton reads them; the
    file lies in the model's directory (Triton's convention), never outside it."""
    name = tensor.label_filename
    outside = f"label_filename of {tensor.name} points outside the model's directory"
    if "\0" in name:  # no file has one; the file system would refuse the name (ValueError)
        raise UnsupportedModel(f"label_filename of {tensor.name} has a NUL character")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise UnsupportedModel(outside)
    path = model_dir / relative
    try:
        if not path.resolve().is_relative_to(model_dir.resolve()):
            raise UnsupportedModel(outside)  # a symbolic link out
        if path.stat().st_size > MAX_LABEL_BYTES:
            raise UnsupportedModel(f"{name} is larger than {MAX_LABEL_BYTES} bytes")
        labels = label_lines(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise UnsupportedModel(f"{name}, the label file of {tensor.name}, is missing") from None
    except UnicodeDecodeError:
        raise UnsupportedModel(f"{name} is not UTF-8 text") from None
    except OSError as error:
        raise UnsupportedModel(f"{name} cannot be read: {error.strerror}") from None
    if len(labels) != outputs:
        raise UnsupportedModel(
            f"{name} has {len(labels)} labels (one per line), but {tensor.name} has "
            f"{outputs} outputs"
        )
    return labels


def label_lines(text: str) -> list[str]:
    """The labels of a label file: its lines split at "\\n" alone, as Triton's getline does (a
    form feed or U+2028 inside a label is part of it), a Windows line end's "\\r" and a
    leading byte order mark dropped."""
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def served_versions(config: ModelConfig | None, on_disk: list[int]) -> list[int]:
    """The versions `version_policy` serves, as Triton chooses them: `latest` the N highest
    (Triton's default, N = 1, where config.pbtxt is silent or absent), `all`, or `specific`
    those listed that are on disk."""
    policy = config.version_policy if config is not None else None
    choice = policy.WhichOneof("policy_choice") if policy is not None else None
    if choice == "all":
        return sorted(on_disk)
    if choice == "specific":
        wanted = set(policy.specific.versions)  # type: ignore[union-attr]
        return sorted(v for v in on_disk if v in wanted)
    count = policy.latest.num_versions if choice == "latest" else 1  # type: ignore[union-attr]
    if count < 1:
        raise UnsupportedModel("version_policy latest needs num_versions of at least 1")
    return sorted(on_disk)[-count:]
