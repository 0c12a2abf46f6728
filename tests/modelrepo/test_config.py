"""config.pbtxt: what training writes reads back the same, and Triton's own examples parse."""

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2

from modelrepo.config import (
    BatchingConfig,
    ConfigError,
    batching_of,
    format_config,
    parse_config,
    read_config,
    write_config,
)
from tests.conftest import MODELS_DIR
from training.export import triton_config
from training.tasks import TASKS

# Configurations in the shape of Triton's model-configuration guide: lists and messages with
# and without the colon, comments, enums, nested policies.
TRITON_DOC_CONFIGS = {
    "minimal": """
        platform: "tensorrt_plan"
        max_batch_size: 8
        input [
          {
            name: "input0"
            data_type: TYPE_FP32
            dims: [ 16 ]
          },
          {
            name: "input1"
            data_type: TYPE_FP32
            dims: [ 16 ]
          }
        ]
        output [
          {
            name: "output0"
            data_type: TYPE_FP32
            dims: [ 16 ]
          }
        ]
    """,
    "batching and instances": """
        # a comment
        name: "mnist"  # a trailing comment
        platform: "pytorch_libtorch"
        max_batch_size: 1024
        input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 784 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 10 ]
                   label_filename: "labels.txt" } ]
        dynamic_batching {
          preferred_batch_size: [ 4, 8 ]
          max_queue_delay_microseconds: 250
        }
        instance_group [ { count: 2 kind: KIND_CPU } ]
        version_policy: { latest: { num_versions: 2 } }
    """,
    "specific versions, default file": """
        backend: "pytorch"
        default_model_filename: "weights.pt"
        max_batch_size: 0
        version_policy: { specific: { versions: [1, 3] } }
        input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1, 4 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1, 3 ] } ]
        parameters: { key: "INFERENCE_MODE" value: { string_value: "true" } }
    """,
}


@pytest.mark.parametrize("name", sorted(TRITON_DOC_CONFIGS))
def test_tritons_documented_configs_parse(name: str) -> None:
    config = parse_config(TRITON_DOC_CONFIGS[name])
    assert config.input
    assert config.output
    assert parse_config(format_config(config)) == config


def test_fields_are_tritons_messages() -> None:
    config = parse_config(TRITON_DOC_CONFIGS["batching and instances"])
    assert config.max_batch_size == 1024
    assert list(config.input[0].dims) == [784]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert config.output[0].label_filename == "labels.txt"
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.version_policy.latest.num_versions == 2
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU


@pytest.mark.parametrize(
    "text", ['name: "x', "input { name: 1", "max_batch_size: ", "max_batch_size: $", "nope: 1"]
)
def test_what_is_not_a_model_config_is_an_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_what_training_writes_reads_back_the_same(tmp_path: Path, name: str) -> None:
    written = triton_config(TASKS[name])
    path = tmp_path / "config.pbtxt"
    write_config(path, written, "a comment\nover two lines")
    assert path.read_text().startswith("# a comment\n# over two lines\n")
    assert read_config(path) == written
    batching = batching_of(read_config(path), default_max_batch=7, default_delay_s=0.5)
    assert batching.max_batch_size == TASKS[name].max_batch_size
    assert batching.max_queue_delay_s == TASKS[name].max_queue_delay_us / 1e6


def test_settings_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    silent = parse_config('name: "m"\nplatform: "pytorch_libtorch"\n')
    assert batching_of(silent, 7, 0.5) == batching_of(None, 7, 0.5)
    assert batching_of(None, 9, 0.25) == BatchingConfig(9, 0.25)
    assert read_config(tmp_path / "none.pbtxt") is None
    # Triton: a dynamic_batching block without a delay waits 0 us, not the server's default.
    assert batching_of(parse_config("dynamic_batching { }"), 7, 0.5).max_queue_delay_s == 0.0


def test_bundled_configs_are_read() -> None:
    config = read_config(MODELS_DIR / "iris" / "config.pbtxt")
    assert config is not None
    assert config.max_batch_size == 256
    assert batching_of(config, 1, 1.0).max_batch_size == 256


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("max_batch_size: 1000000000", "max_batch_size 1000000000 is outside 0..65536"),
        ("max_batch_size: -1", "max_batch_size -1 is outside 0..65536"),
        (
            "dynamic_batching { max_queue_delay_microseconds: 3600000000 }",
            "max_queue_delay_microseconds 3600000000 is above 60000000",
        ),
    ],
)
def test_batching_values_beyond_sanity_are_refused_before_use(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        batching_of(parse_config(text), 8, 0.0)
