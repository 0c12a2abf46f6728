"""Loading one version: SERVE_RUNTIME picks the runtime and so the file, whose hash is checked
against the card and the trusted list before anything parses it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf.json_format import MessageToDict
from onnx import TensorProto, helper

from modelrepo.config import BatchingConfig, read_config
from modelrepo.layout import CARD_FILE, CONFIG_FILE, MODEL_FILE, ONNX_FILE, sha256_of
from service.batching import DynamicBatcher
from service.errors import ModelNotReady
from service.in_flight import REQUESTS
from service.loading import (
    BackendMissing,
    LoadError,
    LoadPolicy,
    choose_runtime,
    load_version,
    read_card,
    read_trusted,
    unchanged,
)
from tests.conftest import MODELS_DIR
from tests.service.fixture_models import card_for
from tests.triton_models import CLASSES, FEATURES, write_triton_model

BATCHING = BatchingConfig(max_batch_size=8, max_queue_delay_s=0.0)


def policy(**changes) -> LoadPolicy:
    return LoadPolicy(**{"device": "cpu", "warmup": True, "max_staging_bytes": 1 << 20} | changes)


def card_lists_onnx_as_it_is(version_dir: Path) -> None:
    """The card's sha256 of model.onnx set to that of the file now there."""
    card = json.loads((version_dir / CARD_FILE).read_text())
    card["files"][ONNX_FILE] = sha256_of(version_dir / ONNX_FILE)
    (version_dir / CARD_FILE).write_text(json.dumps(card))


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    """A copy of the second bundled iris version: model.pt and model.onnx, both in its card."""
    version_dir = tmp_path / "iris" / "2"
    shutil.copytree(MODELS_DIR / "iris" / "2", version_dir)
    return version_dir


@pytest.fixture
def torchscript_only(tmp_path: Path) -> Path:
    """The first bundled iris version, written before ONNX files existed."""
    version_dir = tmp_path / "iris" / "1"
    shutil.copytree(MODELS_DIR / "iris" / "1", version_dir)
    return version_dir


def test_auto_serves_onnx_on_the_cpu_where_the_version_has_it(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy())
    assert (model.runtime.name, model.runtime.device, model.file) == (
        "onnxruntime",
        "cpu",
        ONNX_FILE,
    )
    assert model.digest == sha256_of(iris / ONNX_FILE)
    assert model.config().platform == "onnxruntime_onnx"


def test_auto_serves_torchscript_where_there_is_no_onnx_file(torchscript_only: Path) -> None:
    model = load_version(torchscript_only, "iris", BATCHING, policy())
    assert (model.runtime.name, model.file) == ("torchscript", MODEL_FILE)
    assert model.config().platform == "pytorch_libtorch"


def test_auto_serves_torchscript_where_onnxruntime_is_not_installed(
    iris: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.loading.installed", lambda name: name != "onnxruntime")
    assert load_version(iris, "iris", BATCHING, policy()).runtime.name == "torchscript"


def test_torchscript_is_served_when_asked_for(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy(runtime="torchscript"))
    assert (model.runtime.name, model.digest) == ("torchscript", sha256_of(iris / MODEL_FILE))


def test_onnxruntime_without_an_onnx_file_is_refused(torchscript_only: Path) -> None:
    with pytest.raises(
        LoadError, match=r"SERVE_RUNTIME=onnxruntime, but the card lists no model\.onnx"
    ):
        load_version(torchscript_only, "iris", BATCHING, policy(runtime="onnxruntime"))


def test_onnxruntime_on_cuda_is_refused(iris: Path) -> None:
    with pytest.raises(LoadError, match="ONNX Runtime serves on the CPU here, not cuda"):
        load_version(iris, "iris", BATCHING, policy(runtime="onnxruntime", device="cuda"))


def test_the_onnx_file_must_match_the_card(iris: Path) -> None:
    (iris / ONNX_FILE).write_bytes((iris / ONNX_FILE).read_bytes() + b"\0")
    with pytest.raises(LoadError, match=r"sha256 of model.onnx is [0-9a-f]{64}, the card says"):
        load_version(iris, "iris", BATCHING, policy())
    assert load_version(iris, "iris", BATCHING, policy(runtime="torchscript")).file == MODEL_FILE


def test_the_trusted_list_is_checked_for_the_file_that_runs(iris: Path) -> None:
    only_torchscript = policy(trusted=frozenset({sha256_of(iris / MODEL_FILE)}))
    with pytest.raises(LoadError, match=r"sha256 of model.onnx \([0-9a-f]{64}\) is not in the"):
        load_version(iris, "iris", BATCHING, only_torchscript)
    trusted = policy(trusted=frozenset({sha256_of(iris / ONNX_FILE)}))
    assert load_version(iris, "iris", BATCHING, trusted).file == ONNX_FILE


def test_a_missing_onnx_file_that_the_card_lists_is_an_error(iris: Path) -> None:
    (iris / ONNX_FILE).unlink()
    with pytest.raises(LoadError, match=r"^model\.onnx is missing$"):
        load_version(iris, "iris", BATCHING, policy())


def test_a_corrupt_onnx_file_is_a_load_error(iris: Path) -> None:
    (iris / ONNX_FILE).write_bytes(b"not a graph")
    card_lists_onnx_as_it_is(iris)
    with pytest.raises(LoadError, match=r"^model\.onnx cannot be loaded: "):
        load_version(iris, "iris", BATCHING, policy())


def test_torchscript_without_torch_says_what_to_install(
    torchscript_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.runtime.installed", lambda name: name != "torchscript")
    with pytest.raises(
        BackendMissing, match=r"^model.pt needs torch: pip install 'mlp-serve\[torch\]'$"
    ):
        load_version(torchscript_only, "iris", BATCHING, policy())


def test_a_version_is_unchanged_until_the_file_it_runs_changes(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy())
    assert unchanged(model, iris, BATCHING)
    assert not unchanged(model, iris, BatchingConfig(max_batch_size=4, max_queue_delay_s=0.0))
    (iris / ONNX_FILE).write_bytes(b"changed")
    assert not unchanged(model, iris, BATCHING)


def test_a_version_with_a_card_is_unchanged_beside_its_config(iris: Path) -> None:
    """The card is what a carded version is compared by, config.pbtxt or not."""
    config = read_config(MODELS_DIR / "iris" / CONFIG_FILE)
    model = load_version(iris, "iris", BATCHING, policy(), config)
    assert unchanged(model, iris, BATCHING, config)


def test_a_card_written_beside_a_card_less_version_is_a_change(tmp_path: Path) -> None:
    """Adopting a Triton model writes its card: the version is loaded again, from the card."""
    model_dir = write_triton_model(tmp_path / "pets")
    config = read_config(model_dir / CONFIG_FILE)
    model = load_version(model_dir / "1", "pets", BATCHING, policy(), config)
    assert unchanged(model, model_dir / "1", BATCHING, config)
    card = card_for("pets", 1, model.digest, FEATURES, CLASSES)
    (model_dir / "1" / CARD_FILE).write_text(card.model_dump_json())
    assert not unchanged(model, model_dir / "1", BATCHING, config)


def test_a_short_onnx_forward_pass_may_run_inline(iris: Path) -> None:
    generous = policy(inline_max_s=10.0)
    assert load_version(iris, "iris", BATCHING, generous).inline_rows == 8  # sizes 1, 2, 8
    assert load_version(iris, "iris", BATCHING, policy()).inline_rows == 0  # no limit: never


def test_torchscript_and_a_queue_delay_never_run_inline(iris: Path) -> None:
    generous = policy(inline_max_s=10.0)
    torchscript = load_version(
        iris, "iris", BATCHING, policy(runtime="torchscript", inline_max_s=10.0)
    )
    assert torchscript.inline_rows == 0  # a module may run code that waits
    waiting = BatchingConfig(max_batch_size=8, max_queue_delay_s=0.001)
    assert load_version(iris, "iris", waiting, generous).inline_rows == 0  # it asks to wait


def test_a_graph_onnx_runtime_refuses_is_a_load_error_without_the_path(iris: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["INPUT__0"], ["OUTPUT__0"])],
        "unknown",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, ["batch", 3])],
    )
    onnx.save(helper.make_model(graph), str(iris / ONNX_FILE))
    card_lists_onnx_as_it_is(iris)
    with pytest.raises(LoadError, match=r"^model\.onnx cannot be loaded: ") as refused:
        load_version(iris, "iris", BATCHING, policy())
    assert "NoSuchOperator" in str(refused.value)
    assert str(iris.parent.parent) not in str(refused.value)


def test_the_config_served_is_the_card_with_the_batching_honoured(iris: Path) -> None:
    batching = BatchingConfig(max_batch_size=8, max_queue_delay_s=0.0025)
    model = load_version(iris, "iris", batching, policy())
    assert (model.name, model.version) == ("iris", 2)
    assert MessageToDict(model.config()) == {
        "name": "iris",
        "platform": "onnxruntime_onnx",
        "maxBatchSize": 8,
        "input": [{"name": "INPUT__0", "dataType": "TYPE_FP32", "dims": ["4"]}],
        "output": [{"name": "OUTPUT__0", "dataType": "TYPE_FP32", "dims": ["3"]}],
        "dynamicBatching": {"maxQueueDelayMicroseconds": "2500"},
    }


def test_a_version_without_a_batcher_is_not_serving(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy())
    with pytest.raises(ModelNotReady, match=r"^model 'iris' version 2 is not serving$"):
        asyncio.run(model.infer(np.zeros((1, 4), dtype=np.float32), 30))


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("binary", "2", "card.json says iris/2, but it lies in binary/2"),
        ("iris", "3", "card.json says iris/2, but it lies in iris/3"),
    ],
)
def test_a_card_must_name_the_directory_it_lies_in(
    iris: Path, name: str, version: str, message: str
) -> None:
    elsewhere = iris.parent.parent / name / version
    shutil.copytree(iris, elsewhere, dirs_exist_ok=True)
    with pytest.raises(LoadError) as refused:
        load_version(elsewhere, name, BATCHING, policy())
    assert str(refused.value) == message


def test_a_card_that_cannot_be_read_says_why(iris: Path) -> None:
    card = iris / CARD_FILE
    card.write_text("{}")
    with pytest.raises(LoadError, match=r"^card\.json is invalid: Field required$"):
        read_card(iris)
    one_error = json.loads((MODELS_DIR / "iris" / "2" / CARD_FILE).read_text()) | {"version": 0}
    card.write_text(json.dumps(one_error))
    with pytest.raises(
        LoadError, match=r"^card\.json is invalid: Input should be greater than or equal to 1$"
    ):
        read_card(iris)
    card.unlink()
    with pytest.raises(LoadError, match=r"^card\.json is missing$"):
        read_card(iris)
    card.mkdir()
    with pytest.raises(LoadError, match=r"^card\.json is a directory, not a file$"):
        read_card(iris)
    card.rmdir()
    card.symlink_to(card)
    with pytest.raises(
        LoadError, match=r"^card\.json cannot be read: Too many levels of symbolic links$"
    ):
        load_version(iris, "iris", BATCHING, policy())


def test_staging_above_the_limit_is_refused_before_loading(iris: Path) -> None:
    needed = 8 * 4 * 4  # max_batch_size x features x float32
    assert load_version(iris, "iris", BATCHING, policy(max_staging_bytes=needed)).file
    with pytest.raises(LoadError) as refused:
        load_version(iris, "iris", BATCHING, policy(max_staging_bytes=needed - 1))
    assert str(refused.value) == (
        "max_batch_size 8 x 4 features needs 128 bytes of staging, "
        "above SERVE_MAX_STAGING_BYTES (127)"
    )


def test_a_trusted_list_that_cannot_be_used_refuses_every_version(iris: Path) -> None:
    broken = policy(trusted=frozenset(), trust_problem="the trusted list cannot be used: x")
    with pytest.raises(LoadError, match=r"^the trusted list cannot be used: x$"):
        load_version(iris, "iris", BATCHING, broken)


def test_a_trusted_list_reads_as_sha256sum_writes_it(tmp_path: Path) -> None:
    one, two = "a" * 64, "0123456789abcdef" * 4
    path = tmp_path / "trusted.txt"
    path.write_text(f"# trusted models\n\n{one}  models/iris/2/model.onnx\n  {two.upper()} # ok\n")
    assert read_trusted(path) == frozenset({one, two})


@pytest.mark.parametrize(
    "bad", ["a" * 63, "a" * 65, "g" * 64, "A" * 63 + "-"], ids=["short", "long", "not-hex", "sign"]
)
def test_a_trusted_list_line_that_is_no_digest_is_refused(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "trusted.txt"
    path.write_text(f"{'b' * 64}\n# comment\n{bad}  model.pt\n")
    with pytest.raises(ValueError, match=r"^line 3 is not a sha256 digest$"):
        read_trusted(path)


def test_a_version_whose_card_or_file_went_away_is_changed(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy())
    card = (iris / CARD_FILE).read_text()
    (iris / CARD_FILE).write_text(card.replace("Iris species", "Iris"))
    assert not unchanged(model, iris, BATCHING)  # another card
    (iris / CARD_FILE).write_text("{")
    assert not unchanged(model, iris, BATCHING)
    (iris / CARD_FILE).unlink()
    assert not unchanged(model, iris, BATCHING)
    (iris / CARD_FILE).write_text(card)
    assert unchanged(model, iris, BATCHING)
    (iris / ONNX_FILE).unlink()
    assert not unchanged(model, iris, BATCHING)


def with_onnx_graph(version_dir: Path, *nodes: onnx.NodeProto, initializers=()) -> None:
    """The version's model.onnx replaced by a graph of `nodes`, and its card updated to match."""
    graph = helper.make_graph(
        list(nodes),
        "fixture",
        [helper.make_tensor_value_info("INPUT__0", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("OUTPUT__0", TensorProto.FLOAT, ["rows", 4])],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(version_dir / ONNX_FILE))
    card_lists_onnx_as_it_is(version_dir)


def test_a_warm_up_that_fails_is_a_load_error_and_no_warm_up_skips_it(iris: Path) -> None:
    bounds = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("s", 0), ("e", -1))]
    drops_last_row = helper.make_node("Slice", ["INPUT__0", "s", "e"], ["OUTPUT__0"])
    with_onnx_graph(iris, drops_last_row, initializers=bounds)
    with pytest.raises(LoadError) as refused:
        load_version(iris, "iris", BATCHING, policy())
    assert str(refused.value) == (
        "warm-up forward pass failed: the model returned 0 output rows for 1 input rows"
    )
    assert load_version(iris, "iris", BATCHING, policy(warmup=False)).file == ONNX_FILE


def test_a_corrupt_torchscript_file_is_a_load_error_without_the_path(
    torchscript_only: Path,
) -> None:
    (torchscript_only / MODEL_FILE).write_bytes(b"not an archive")
    card = json.loads((torchscript_only / CARD_FILE).read_text())
    card["sha256"] = sha256_of(torchscript_only / MODEL_FILE)
    (torchscript_only / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(LoadError, match=r"^model\.pt cannot be loaded: ") as refused:
        load_version(torchscript_only, "iris", BATCHING, policy())
    assert str(torchscript_only) not in str(refused.value)


def test_auto_on_cuda_and_onnxruntime_when_asked_choose_their_runtime(iris: Path) -> None:
    card = read_card(iris)
    assert choose_runtime(card, policy(device="cuda")) == "torchscript"
    assert choose_runtime(card, policy(runtime="onnxruntime")) == "onnxruntime"
    assert choose_runtime(card, policy(runtime="torchscript", device="cuda")) == "torchscript"


def test_the_onnx_session_gets_the_threads_asked_for(iris: Path) -> None:
    model = load_version(iris, "iris", BATCHING, policy(threads=2))
    options = model.runtime.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)


def test_a_lone_request_runs_inline_and_one_with_company_through_the_queue(
    iris: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_version(iris, "iris", BATCHING, policy(inline_max_s=10.0))
    row = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)

    async def scenario() -> None:
        model.batcher = DynamicBatcher(
            model.runtime.run_batch,
            name="iris/2",
            max_batch_size=8,
            max_queue_delay_s=0.0,
            max_queue_size=64,
            inline_max_rows=model.inline_rows,
        )
        model.batcher.start()
        try:
            for in_server in (0, 1, 2):
                monkeypatch.setattr(REQUESTS, "requests", in_server)
                await model.infer(row, 30)
                inline.append(model.batcher.stats.inline_requests)
        finally:
            await model.batcher.stop()

    inline: list[int] = []
    asyncio.run(scenario())
    assert inline == [1, 2, 2]  # none or one request in the server: inline; two: queued
    assert model.batcher.stats.batches == 3


def test_the_config_gives_the_queue_delay_in_whole_microseconds(iris: Path) -> None:
    model = load_version(iris, "iris", BatchingConfig(8, 0.75), policy())
    assert model.config().dynamic_batching.max_queue_delay_microseconds == 750_000


def test_a_mismatch_names_both_digests(iris: Path) -> None:
    (iris / ONNX_FILE).write_bytes((iris / ONNX_FILE).read_bytes() + b"\0")
    card = read_card(iris)
    with pytest.raises(LoadError) as refused:
        load_version(iris, "iris", BATCHING, policy())
    assert str(refused.value) == (
        f"sha256 of model.onnx is {sha256_of(iris / ONNX_FILE)}, "
        f"the card says {card.files[ONNX_FILE]}"
    )


def test_onnxruntime_on_cuda_says_what_to_use_instead(iris: Path) -> None:
    with pytest.raises(LoadError) as refused:
        load_version(iris, "iris", BATCHING, policy(runtime="onnxruntime", device="cuda"))
    assert str(refused.value) == (
        "ONNX Runtime serves on the CPU here, not cuda: "
        "use SERVE_RUNTIME=torchscript (or auto) for CUDA"
    )


def test_an_unexpected_error_while_loading_names_its_type_and_first_line(
    iris: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def surprise(*args: object) -> None:
        raise KeyError("location")

    monkeypatch.setattr("service.loading.check_staging", surprise)
    with pytest.raises(LoadError, match=r"^unexpected KeyError: 'location'$"):
        load_version(iris, "iris", BATCHING, policy())


@pytest.mark.parametrize("resolved", [True, False], ids=["resolved", "as-given"])
def test_a_runtime_error_loses_the_directory_in_either_spelling(
    iris: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolved: bool
) -> None:
    """Reached through a symbolic link, the version directory has two spellings; a library
    may quote either."""
    (tmp_path / "link").symlink_to(iris.parent.parent)
    linked = tmp_path / "link" / "iris" / "2"

    def quoting(name: str, path: Path, *args: object) -> None:
        raise RuntimeError(f"cannot open {path.resolve() if resolved else path}: bad magic")

    monkeypatch.setattr("service.loading.open_runtime", quoting)
    with pytest.raises(LoadError) as refused:
        load_version(linked, "iris", BATCHING, policy())
    assert str(refused.value) == "model.onnx cannot be loaded: cannot open model.onnx: bad magic"


def test_a_runtime_error_without_a_message_is_named_by_its_type(
    iris: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def silent(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr("service.loading.open_runtime", silent)
    with pytest.raises(LoadError, match=r"^model\.onnx cannot be loaded: MemoryError$"):
        load_version(iris, "iris", BATCHING, policy())


def test_a_trusted_list_comment_ends_the_line_at_its_first_hash(tmp_path: Path) -> None:
    path = tmp_path / "trusted.txt"
    path.write_text(f"{'c' * 64}#iris#version-2\n")
    assert read_trusted(path) == frozenset({"c" * 64})
