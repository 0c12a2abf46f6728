"""What the registry tells the operator and the API: its log lines (each with its JSON fields),
the index rows and error messages of models that cannot load, the load policy it derives from
the settings, and the edges of polling. `ModelRegistry` on its own, as in test_repository.py."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from modelrepo import layout
from modelrepo.layout import CARD_FILE, CONFIG_FILE
from service.errors import ModelLoadFailed, ModelNotReady, Unavailable
from service.loading import LoadPolicy
from service.repository import UNAVAILABLE, IndexEntry, ModelRegistry
from service.settings import Settings
from tests.conftest import copy_bundled
from tests.service.fixture_models import GATED_FEATURES, Gate, write_gated_model
from tests.service.test_repository import IRIS_ROW, break_card, registry_of, serve

LOGGER = "service.repository"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_bundled(tmp_path / "models", "iris")


class LogLines:
    """The registry's log lines as they have arrived so far: (level, message, JSON fields)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def __iter__(self):  # type: ignore[no-untyped-def]
        for record in self.caplog.records:
            if record.name == LOGGER:
                yield record.levelname, record.getMessage(), getattr(record, "fields", None)

    def messages(self) -> list[str]:
        return [message for _, message, _ in self]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> LogLines:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return LogLines(caplog)


def test_start_logs_each_version_and_the_repository_with_their_fields(root: Path, lines) -> None:
    break_card(root / "iris" / "1")
    serve(root, lambda registry: asyncio.sleep(0), inline_max_us=0, max_queue_size=77)
    reason = "card.json is invalid: Invalid JSON: EOF while parsing an object at line 1 column 1"
    assert list(lines) == [
        (
            "ERROR",
            f"model iris version 1 not loaded: {reason}",
            {"model": "iris", "version": 1, "reason": reason},
        ),
        (
            "INFO",
            "model iris version 2 ready (onnxruntime on cpu)",
            {
                "model": "iris",
                "version": 2,
                "runtime": "onnxruntime",
                "device": "cpu",
                "max_batch_size": 256,
                "max_queue_delay_ms": 0.0,
                "max_queue_size": 77,
                "inline_max_rows": 0,
                "has_card": True,
            },
        ),
        (
            "INFO",
            "repository loaded",
            {
                "repository": str(root),
                "device": "cpu",
                "models": {"iris": [2]},
                "runtimes": {"iris/2": "onnxruntime on cpu"},
                "failed": {"iris": [1]},
            },
        ),
    ]


def test_a_missing_backend_is_a_warning_not_an_error(
    root: Path, lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.runtime.installed", lambda name: name != "torchscript")
    serve(root, lambda registry: asyncio.sleep(0))
    level, message, _ = next(iter(lines))
    assert (level, message) == (
        "WARNING",
        "model iris version 1 not loaded: model.pt needs torch: pip install 'mlp-serve[torch]'",
    )


def test_a_model_directory_that_cannot_be_read_is_reported_in_the_index_and_errors(
    root: Path, lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(model_dir: Path) -> list[Path]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(layout, "version_dirs", unreadable)
    problem = "the model's directory cannot be read: Permission denied"

    async def scenario(registry: ModelRegistry) -> None:
        assert registry.index() == [IndexEntry("iris", "", UNAVAILABLE, problem)]
        with pytest.raises(ModelNotReady, match=f"^model 'iris' is not ready: {problem}$"):
            registry.get("iris")

    serve(root, scenario)
    assert f"model iris not loaded: {problem}" in lines.messages()


def test_an_invalid_config_names_itself_in_the_log(root: Path, lines) -> None:
    (root / "iris" / CONFIG_FILE).write_text("max_batch_size: -1\n")
    serve(root, lambda registry: asyncio.sleep(0))
    assert lines.messages()[0] == (
        "model iris not loaded: config.pbtxt is invalid: max_batch_size -1 is outside 0..65536"
    )


def test_a_version_policy_that_selects_nothing_names_itself_in_the_log(root: Path, lines) -> None:
    config = root / "iris" / CONFIG_FILE
    config.write_text(
        config.read_text().replace(
            "version_policy: { all { } }", "version_policy: { specific: { versions: [ 7 ] } }"
        )
    )
    serve(root, lambda registry: asyncio.sleep(0))
    assert [(level, message) for level, message, _ in lines] == [
        (
            "ERROR",
            "model iris not loaded: config.pbtxt's version_policy selects none of the versions "
            "on disk",
        ),
        ("INFO", "repository loaded"),
    ]


def test_the_ready_line_gives_the_queue_delay_in_milliseconds(root: Path, lines) -> None:
    """The delay that config.pbtxt leaves to the settings, as the batcher waits it."""
    config = root / "iris" / CONFIG_FILE
    config.write_text(config.read_text().split("dynamic_batching")[0])
    serve(root, lambda registry: asyncio.sleep(0), max_queue_delay_ms=4.0)
    ready = [fields for _, message, fields in lines if " ready (" in message]
    assert [fields["max_queue_delay_ms"] for fields in ready] == [4.0, 4.0]


def test_a_failure_names_every_version_that_still_serves(root: Path) -> None:
    shutil.copytree(root / "iris" / "2", root / "iris" / "3")

    async def scenario(registry: ModelRegistry) -> None:
        break_card(root / "iris" / "3")
        with pytest.raises(ModelLoadFailed) as failed:
            (await registry.load("iris")).raise_if_failed()
        assert str(failed.value).endswith("; versions serving: 1, 2")

    serve(root, scenario)


def test_the_load_policy_is_the_settings(root: Path, tmp_path: Path) -> None:
    registry = registry_of(
        root, warmup=False, runtime="torchscript", torch_threads=3, inline_max_us=150
    )
    assert registry.policy() == LoadPolicy(
        "cpu", False, Settings().max_staging_bytes, "torchscript", 3, 150e-6
    )
    trusted = tmp_path / "trusted.txt"
    trusted.write_text(f"{'a' * 64}\n")
    listed = registry_of(root, trusted_hashes=trusted).policy()
    assert (listed.warmup, listed.runtime, listed.trusted) == (True, "auto", {"a" * 64})


def test_a_trusted_list_that_cannot_be_read_is_logged(root: Path, tmp_path: Path, lines) -> None:
    registry_of(root, trusted_hashes=tmp_path / "absent.txt").policy()
    assert lines.messages() == [
        "the trusted list (SERVE_TRUSTED_HASHES) cannot be used: No such file or directory"
    ]


def test_a_missing_repository_is_logged(tmp_path: Path, lines) -> None:
    assert registry_of(tmp_path / "absent").model_names() == []
    assert lines.messages() == [f"model repository {tmp_path / 'absent'} does not exist"]


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (PermissionError(13, "Permission denied"), "Permission denied"),
        (OSError("no strerror"), "no strerror"),
        (ValueError("not a directory listing"), "not a directory listing"),
    ],
    ids=["strerror", "oserror-without-strerror", "other"],
)
def test_a_repository_that_cannot_be_scanned_says_why(
    root: Path, lines, monkeypatch: pytest.MonkeyPatch, error: Exception, why: str
) -> None:
    registry = registry_of(root)
    assert registry.scan_problem is None  # readable until a scan says otherwise

    def fails() -> None:
        raise error

    monkeypatch.setattr(registry, "scan", fails)
    assert registry.scan_safely() == {}
    assert registry.scan_problem == f"the model repository cannot be read: {why}"
    assert lines.messages() == [registry.scan_problem]


def test_the_index_before_start_lists_what_is_on_disk(root: Path) -> None:
    registry = registry_of(root)
    assert registry.index() == [
        IndexEntry("iris", "1", UNAVAILABLE, "not loaded"),
        IndexEntry("iris", "2", UNAVAILABLE, "not loaded"),
    ]


def test_calls_before_start_say_the_models_are_still_loading(root: Path) -> None:
    with pytest.raises(ModelNotReady) as refused:
        registry_of(root).entry("iris")
    assert str(refused.value) == "models are still loading; retry shortly"


@pytest.mark.parametrize(
    "name", [".iris", "..", "iris/2", "ir\0is", "a" * 256, ""], ids=lambda n: repr(n)[:12]
)
def test_names_that_cannot_be_a_model_directory_are_not_on_disk(root: Path, name: str) -> None:
    (root / ".iris").mkdir()
    assert not registry_of(root).on_disk(name)


def test_a_directory_name_of_the_longest_length_is_on_disk(root: Path) -> None:
    (root / ("a" * 255)).mkdir()
    assert registry_of(root).on_disk("a" * 255)


def test_unload_and_poll_log_what_they_do(root: Path, lines) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        await registry.unload("iris")
        copy_bundled(root, "regression")
        (root / "regression" / "1" / CARD_FILE).touch()
        await registry.poll()
        shutil.rmtree(root / "regression")
        await registry.poll()

    serve(root, scenario)
    fields = {message: f for _, message, f in lines}
    assert fields["model iris unloaded"] == {"model": "iris"}
    assert fields["model regression changed on disk; loading"] == {"model": "regression"}
    assert "model regression left the repository; unloading" in fields


def test_a_renamed_file_of_the_same_size_and_time_is_a_change(root: Path, lines) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        curves = root / "iris" / "2" / "curves.png"
        curves.rename(curves.with_name("curves-renamed.png"))
        await registry.poll()

    serve(root, scenario)
    assert lines.messages()[-1] == "model iris changed on disk; loading"


def test_files_that_cannot_be_listed_are_looked_at_again_on_the_next_poll(
    root: Path, lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        fingerprint = registry.fingerprint

        def fails(name: str) -> tuple:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(registry, "fingerprint", fails)
        await registry.load("iris")
        monkeypatch.setattr(registry, "fingerprint", fingerprint)
        await registry.poll()  # nothing changed, but what was seen is not known

    serve(root, scenario)
    assert lines.messages()[-2:] == [
        "model iris: its files cannot be listed: Input/output error",
        "model iris changed on disk; loading",
    ]


def test_the_rows_a_version_serves_are_counted_under_its_name_and_version(root: Path) -> None:
    labels = {"model": "iris", "version": "2"}

    def rows() -> float:
        return REGISTRY.get_sample_value("mlp_serve_inference_rows_total", labels) or 0.0

    async def scenario(registry: ModelRegistry) -> None:
        before = rows()
        await registry.get("iris", "2").infer(np.repeat(IRIS_ROW, 3, axis=0), 30)
        assert rows() == before + 3

    serve(root, scenario)


def test_the_poll_loop_goes_on_after_a_poll_that_fails(
    root: Path, lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        polls: list[int] = []
        second = asyncio.Event()

        async def poll() -> None:
            polls.append(len(polls))
            if len(polls) == 1:
                raise RuntimeError("a bad file")
            second.set()

        monkeypatch.setattr(registry, "poll", poll)
        looping = asyncio.create_task(registry.poll_forever(0.001))
        try:
            await asyncio.wait_for(second.wait(), 30)
        finally:
            looping.cancel()
        assert "repository poll failed" in lines.messages()

    serve(root, scenario)


def test_unload_answers_what_is_still_queued_after_the_drain_timeout(tmp_path: Path) -> None:
    """Behind a forward pass that does not end (the gate stays closed), the queued request and
    the one in the pass are answered 503 once SERVE_DRAIN_TIMEOUT_S has passed, not when the
    pass ends."""
    root = tmp_path / "models"
    gate = Gate(tmp_path / "gate.bin")
    write_gated_model(root, gate, max_batch_size=1)
    rows = np.ones((1, GATED_FEATURES), dtype=np.float32)

    async def scenario(registry: ModelRegistry) -> None:
        model = registry.get("gated")
        gate.close()
        try:
            running = asyncio.create_task(model.infer(rows, 60))
            for _ in range(6000):  # until the first batch is inside the model (30 s at most)
                if gate.entries:
                    break
                await asyncio.sleep(0.005)
            queued = asyncio.create_task(model.infer(rows, 60))
            unloading = asyncio.create_task(registry.unload("gated"))
            for request in (queued, running):
                with pytest.raises(Unavailable, match="is unloading"):
                    await asyncio.wait_for(request, 30)
        finally:
            gate.open()
        await unloading

    serve(root, scenario, drain_timeout_s=0.05, request_timeout_s=0.05)


def fail_loading(registry: ModelRegistry, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, loading model `name` raises what no library expected; others load."""
    load_model = registry._load_model

    def fails_for_name(model_dir: Path, serving=None):  # type: ignore[no-untyped-def]
        if model_dir.name == name:
            raise RuntimeError("a file no library expected")
        return load_model(model_dir, serving)

    monkeypatch.setattr(registry, "_load_model", fails_for_name)


def test_a_model_that_cannot_be_reloaded_stops_neither_the_poll_nor_the_models_after_it(
    tmp_path: Path, lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_bundled(tmp_path / "models", "iris", "regression")

    async def scenario(registry: ModelRegistry) -> None:
        fail_loading(registry, "iris", monkeypatch)
        for name in ("iris", "regression"):
            (root / name / "1" / CARD_FILE).touch()
        await registry.poll()
        assert registry.get("iris").version == 2  # what served still serves
        await registry.poll()  # iris is tried again; regression, unchanged since, is not

    serve(root, scenario)
    assert [m for m in lines.messages() if "reload" in m or "changed" in m] == [
        "model iris changed on disk; loading",
        "model iris could not be reloaded",
        "model regression changed on disk; loading",
        "model iris changed on disk; loading",
        "model iris could not be reloaded",
    ]


def test_a_new_model_that_cannot_be_loaded_stops_neither_the_poll_nor_the_models_after_it(
    root: Path, lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that appeared has no files on record yet: forgetting them is no error."""

    async def scenario(registry: ModelRegistry) -> None:
        fail_loading(registry, "binary", monkeypatch)
        copy_bundled(root, "binary", "regression")  # binary sorts before iris, regression after
        await registry.poll()
        assert sorted(registry.entries) == ["iris", "regression"]
        assert registry.get("regression").version == 2

    serve(root, scenario)
    assert "model binary could not be reloaded" in lines.messages()


def test_a_model_whose_reload_failed_is_tried_again_though_its_files_went_back(
    root: Path, lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed reload the registry no longer knows that what serves is what is on disk,
    so the next poll loads the model again even where its files are as they were loaded."""
    card = root / "iris" / "1" / CARD_FILE
    loaded_at = card.stat()

    async def scenario(registry: ModelRegistry) -> None:
        load_model = registry._load_model

        def fails_once(model_dir: Path, serving=None):  # type: ignore[no-untyped-def]
            monkeypatch.setattr(registry, "_load_model", load_model)
            raise RuntimeError("a file no library expected")

        monkeypatch.setattr(registry, "_load_model", fails_once)
        card.touch()
        await registry.poll()
        os.utime(card, ns=(loaded_at.st_atime_ns, loaded_at.st_mtime_ns))
        await registry.poll()

    serve(root, scenario)
    assert [m for m in lines.messages() if "reload" in m or "changed" in m] == [
        "model iris changed on disk; loading",
        "model iris could not be reloaded",
        "model iris changed on disk; loading",
    ]


def test_stop_answers_what_is_still_queued_after_the_drain_timeout(tmp_path: Path) -> None:
    """As unload does: behind a forward pass that does not end, the queued request and the one
    in the pass are answered 503 once SERVE_DRAIN_TIMEOUT_S has passed."""
    root = tmp_path / "models"
    gate = Gate(tmp_path / "gate.bin")
    write_gated_model(root, gate, max_batch_size=1)
    rows = np.ones((1, GATED_FEATURES), dtype=np.float32)

    async def main() -> None:
        registry = registry_of(root, drain_timeout_s=0.05, request_timeout_s=0.05)
        await registry.start()
        model = registry.get("gated")
        gate.close()
        try:
            running = asyncio.create_task(model.infer(rows, 60))
            for _ in range(6000):  # until the first batch is inside the model (30 s at most)
                if gate.entries:
                    break
                await asyncio.sleep(0.005)
            queued = asyncio.create_task(model.infer(rows, 60))
            stopping = asyncio.create_task(registry.stop())
            for request in (queued, running):
                with pytest.raises(Unavailable, match="is unloading"):
                    await asyncio.wait_for(request, 30)
        finally:
            gate.open()
        await stopping

    asyncio.run(main())
