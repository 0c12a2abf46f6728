from pathlib import Path

import pytest

from service.model_config import ConfigSyntaxError, parse_text_proto, read_batching_config
from tests.conftest import BUNDLED_MODELS
from training.export import triton_config
from training.tasks import TASKS


def test_parses_nested_messages_lists_and_comments() -> None:
    config = parse_text_proto("""
        # a comment
        name: "mnist"  # trailing comment
        max_batch_size: 1024
        input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 784 ] } ]
        dynamic_batching { preferred_batch_size: [ 4, 8 ], max_queue_delay_microseconds: 250 }
        version_policy: { all { } }
    """)
    assert config["name"] == ["mnist"]
    assert config["max_batch_size"] == [1024]
    assert config["input"][0]["dims"] == [784]
    assert config["input"][0]["data_type"] == ["TYPE_FP32"]
    assert config["dynamic_batching"][0]["preferred_batch_size"] == [4, 8]
    assert config["version_policy"] == [{"all": [{}]}]


@pytest.mark.parametrize("text", ['name: "x', "a { b: 1", "a: ", "a: $"])
def test_syntax_errors(text: str) -> None:
    with pytest.raises((ConfigSyntaxError, IndexError)):
        parse_text_proto(text)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_reads_what_training_writes(tmp_path: Path, name: str) -> None:
    task = TASKS[name]
    path = tmp_path / "config.pbtxt"
    path.write_text(triton_config(task))
    batching = read_batching_config(path, default_max_batch=7, default_delay_s=0.5)
    assert batching.max_batch_size == task.max_batch_size
    assert batching.max_queue_delay_s == task.max_queue_delay_us / 1e6


def test_settings_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "config.pbtxt"
    path.write_text('name: "m"\nplatform: "pytorch_libtorch"\n')
    batching = read_batching_config(path, default_max_batch=7, default_delay_s=0.5)
    assert (batching.max_batch_size, batching.max_queue_delay_s) == (7, 0.5)
    missing = read_batching_config(tmp_path / "none.pbtxt", 9, 0.25)
    assert (missing.max_batch_size, missing.max_queue_delay_s) == (9, 0.25)


def test_bundled_configs_are_read() -> None:
    batching = read_batching_config(BUNDLED_MODELS / "iris" / "config.pbtxt", 1, 1.0)
    assert batching.max_batch_size == 256
