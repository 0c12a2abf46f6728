"""Triton's model configuration, `config.pbtxt`: read and written as one pair.

The messages are Triton's own (`model_config.proto`, as tritonclient ships them) in the
protobuf text format, so a configuration written by hand for Triton reads the same here and
what training writes Triton reads unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from modelrepo.layout import write_atomically

ModelConfig = model_config_pb2.ModelConfig


class ConfigError(ValueError):
    """The text is not a Triton ModelConfig; the message says where and why."""


def parse_config(text: str) -> ModelConfig:
    try:
        return text_format.Parse(text, ModelConfig())
    except text_format.ParseError as error:
        raise ConfigError(str(error)) from None


def format_config(config: ModelConfig, comment: str = "") -> str:
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + text_format.MessageToString(config)


def read_config(path: Path) -> ModelConfig | None:
    """The configuration in `path`, or None when the model has none (Triton allows that)."""
    if not path.is_file():
        return None
    return parse_config(path.read_text())


def write_config(path: Path, config: ModelConfig, comment: str = "") -> None:
    write_atomically(path, format_config(config, comment))


@dataclass(frozen=True)
class BatchingConfig:
    """What the dynamic batcher of one model honours."""

    max_batch_size: int
    max_queue_delay_s: float


def batching_of(
    config: ModelConfig | None, default_max_batch: int, default_delay_s: float
) -> BatchingConfig:
    """`max_batch_size` and the queue delay of `dynamic_batching`; the defaults stand in for
    a field the configuration leaves out (`max_batch_size: 0`, or no `dynamic_batching`)."""
    if config is None:
        return BatchingConfig(default_max_batch, default_delay_s)
    max_batch = config.max_batch_size or default_max_batch
    if config.HasField("dynamic_batching"):
        delay_s = config.dynamic_batching.max_queue_delay_microseconds / 1e6
    else:
        delay_s = default_delay_s
    return BatchingConfig(max_batch, delay_s)
