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

# Sanity bounds, checked before anything is sized by them: far above any model served here,
# far below what would exhaust a machine.
MAX_BATCH_SIZE = 65_536
MAX_QUEUE_DELAY_US = 60_000_000


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
    if config.max_batch_size < 0 or config.max_batch_size > MAX_BATCH_SIZE:
        raise ConfigError(f"max_batch_size {config.max_batch_size} is outside 0..{MAX_BATCH_SIZE}")
    max_batch = config.max_batch_size or default_max_batch
    if not config.HasField("dynamic_batching"):
        return BatchingConfig(max_batch, default_delay_s)
    delay_us = config.dynamic_batching.max_queue_delay_microseconds
    if delay_us > MAX_QUEUE_DELAY_US:
        raise ConfigError(
            f"max_queue_delay_microseconds {delay_us} is above {MAX_QUEUE_DELAY_US} (60 s)"
        )
    return BatchingConfig(max_batch, delay_us / 1e6)
