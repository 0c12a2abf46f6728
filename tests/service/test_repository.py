"""The registry on its own, without a server: copies of the bundled models scanned, reloaded,
unloaded and polled, every answer read from `ModelRegistry` itself."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY

from modelrepo.layout import CARD_FILE, CONFIG_FILE, MODEL_FILE, ONNX_FILE, sha256_of
from service.errors import ModelLoadFailed, ModelNotFound, ModelNotReady, Overloaded, Unavailable
from service.loading import LoadError
from service.repository import READY, UNAVAILABLE, IndexEntry, ModelRegistry
from service.settings import Settings
from tests.conftest import MODELS_DIR, copy_bundled

IRIS_ROW = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """iris (1: TorchScript only, 2: with ONNX) and regression (1, 2)."""
    return copy_bundled(tmp_path / "models", "iris", "regression")


def registry_of(root: Path, **settings: object) -> ModelRegistry:
    return ModelRegistry(Settings(models=root, device="cpu", **settings))  # type: ignore[arg-type]


def serve(root: Path, scenario: Callable[[ModelRegistry], Awaitable[None]], **settings) -> None:
    """`scenario` on a started registry of `root`, stopped on the way out."""

    async def main() -> None:
        registry = registry_of(root, **settings)
        await registry.start()
        try:
            await scenario(registry)
        finally:
            await registry.stop()

    asyncio.run(main())


def ready_gauge(name: str, version: int) -> float | None:
    labels = {"model": name, "version": str(version)}
    return REGISTRY.get_sample_value("mlp_serve_model_ready", labels)


def break_card(version_dir: Path) -> None:
    (version_dir / CARD_FILE).write_text("{")


def test_start_serves_every_version_with_a_batcher_of_its_own(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        assert registry.ready
        assert registry.loaded.is_set()
        assert sorted(registry.entries) == ["iris", "regression"]
        assert registry.index() == [
            IndexEntry("iris", "1", READY, ""),
            IndexEntry("iris", "2", READY, ""),
            IndexEntry("regression", "1", READY, ""),
            IndexEntry("regression", "2", READY, ""),
        ]
        iris = registry.entry("iris")
        assert (iris.versions, iris.default_version, iris.ready) == ([1, 2], 2, True)
        iris.raise_if_failed()  # nothing failed: no error
        default, first = registry.get("iris"), registry.get("iris", "1")
        assert (default.version, first.version) == (2, 1)
        assert (default.runtime.name, first.runtime.name) == ("onnxruntime", "torchscript")
        assert default.batcher is not first.batcher
        assert default.batcher.name == "iris/2"
        assert first.batcher.name == "iris/1"
        assert default.batcher.max_batch_size == 256  # iris's config.pbtxt
        assert registry.get("regression").batcher.max_batch_size == 1024
        assert default.batcher.max_queue_size == registry.settings.max_queue_size
        answer = await default.infer(IRIS_ROW, 30)
        assert answer.shape == (1, 3)
        assert answer.argmax() == 0
        np.testing.assert_allclose(await first.infer(IRIS_ROW, 30), answer, atol=0.05)
        assert ready_gauge("iris", 2) == 1.0
        assert ready_gauge("regression", 1) == 1.0

    serve(root, scenario)


def test_batchers_take_the_queue_settings_and_the_measured_inline_rows(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        onnx, torchscript = registry.get("iris", "2"), registry.get("iris", "1")
        assert onnx.inline_rows == 32
        assert onnx.batcher.inline_max_rows == 32
        assert torchscript.batcher.inline_max_rows == 0
        assert onnx.batcher.max_queue_size == 7
        assert onnx.batcher.max_queue_delay_s == 0.0
        with pytest.raises(Overloaded, match=r"0 rows queued \(limit 7\)"):
            await onnx.batcher.infer(np.zeros((8, 4), dtype=np.float32), 30)

    serve(root, scenario, max_queue_size=7, inline_max_us=10_000_000)


def test_the_queue_delay_and_the_batch_size_default_to_the_settings(root: Path) -> None:
    for name in ("iris", "regression"):
        (root / name / CONFIG_FILE).write_text(f'name: "{name}"\n')

    async def scenario(registry: ModelRegistry) -> None:
        batcher = registry.get("iris").batcher
        assert (batcher.max_batch_size, batcher.max_queue_delay_s) == (16, 0.004)

    serve(root, scenario, max_batch_size=16, max_queue_delay_ms=4.0)


def test_calls_before_start_are_told_the_models_are_still_loading(root: Path) -> None:
    registry = registry_of(root)
    assert not registry.ready
    for call in (
        lambda: registry.entry("iris"),
        lambda: registry.get("iris"),
        registry.statistics,
        lambda: asyncio.run(registry.load("iris")),
        lambda: asyncio.run(registry.unload("iris")),
    ):
        with pytest.raises(ModelNotReady, match="models are still loading; retry shortly"):
            call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_that_is_not_here_is_a_load_error(root: Path) -> None:
    with pytest.raises(
        LoadError, match=r"^device 'cuda' requested but CUDA is not available here$"
    ):
        ModelRegistry(Settings(models=root, device="cuda"))


def test_a_version_that_fails_is_reported_and_the_others_serve(root: Path) -> None:
    break_card(root / "iris" / "1")

    async def scenario(registry: ModelRegistry) -> None:
        iris = registry.entry("iris")
        assert (iris.versions, sorted(iris.loaded), iris.default_version) == ([1, 2], [2], 2)
        (why,) = iris.failed.values()
        assert why.startswith("card.json is invalid: ")
        assert registry.index()[:2] == [
            IndexEntry("iris", "1", UNAVAILABLE, why),
            IndexEntry("iris", "2", READY, ""),
        ]
        assert [row.version for row in registry.index(ready_only=True)] == ["2", "1", "2"]
        assert registry.get("iris").version == 2
        with pytest.raises(ModelNotReady) as refused:
            registry.get("iris", "1")
        assert str(refused.value) == f"model 'iris' version 1 is not ready: {why}"
        with pytest.raises(ModelLoadFailed) as failed:
            iris.raise_if_failed()
        assert str(failed.value) == (
            f"failed to load 'iris': version 1: {why}; versions serving: 2"
        )
        assert ready_gauge("iris", 1) == 0.0

    serve(root, scenario)


def test_a_model_none_of_whose_versions_loads_is_not_ready(root: Path) -> None:
    for version in ("1", "2"):
        break_card(root / "iris" / version)

    async def scenario(registry: ModelRegistry) -> None:
        iris = registry.entry("iris")
        assert (iris.ready, iris.default_version, iris.versions) == (False, None, [1, 2])
        with pytest.raises(ModelNotReady) as refused:
            registry.get("iris")
        reason = iris.reason()
        assert reason.startswith("version 1: card.json is invalid")
        assert "; version 2: " in reason
        assert str(refused.value) == f"model 'iris' is not ready: {reason}"
        with pytest.raises(ModelLoadFailed, match=r"; versions serving: none$"):
            iris.raise_if_failed()
        assert registry.get("regression").version == 2

    serve(root, scenario)


# "²" and ARABIC-INDIC DIGIT ONE are digits to str.isdigit, not versions
@pytest.mark.parametrize("version", ["3", "0", "x", "-1", "2.0", "²", "\u0661"])
def test_a_version_the_model_does_not_have_is_not_found(root: Path, version: str) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        with pytest.raises(ModelNotFound) as missing:
            registry.get("iris", version)
        assert str(missing.value) == f"model 'iris' has no version {version!r}; versions: 1, 2"

    serve(root, scenario)


def test_a_directory_named_with_other_digits_is_no_version_and_harms_no_model(root: Path) -> None:
    # "²" is a digit to str.isdigit but no number to int; "01" would be a second version 1.
    for name in ("²", "01"):
        shutil.copytree(root / "iris" / "1", root / "iris" / name)

    async def scenario(registry: ModelRegistry) -> None:
        assert registry.scan_problem is None
        assert registry.entry("iris").versions == [1, 2]
        assert registry.entry("regression").versions == [1, 2]

    serve(root, scenario)


def test_an_unknown_model_is_not_found_with_the_names_that_are(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        with pytest.raises(ModelNotFound) as missing:
            registry.get("mnist")
        assert str(missing.value) == "unknown model 'mnist'; models: iris, regression"
        for name in ("mnist", "", "..", ".hidden", "iris/1", "a\0b", "x" * 256):
            assert not registry.on_disk(name)
            with pytest.raises(ModelNotFound, match="in the model repository"):
                await registry.load(name)
        assert registry.on_disk("iris")

    serve(root, scenario)


def test_an_empty_repository_names_no_models(tmp_path: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        assert (registry.entries, registry.index(), registry.statistics()) == ({}, [], [])
        with pytest.raises(ModelNotFound, match=r"^unknown model 'iris'; models: none$"):
            registry.entry("iris")

    serve(tmp_path / "nowhere", scenario)
    serve(tmp_path, scenario)


def test_an_invalid_config_fails_every_version(root: Path) -> None:
    (root / "iris" / CONFIG_FILE).write_text("max_batch_size: -3\n")

    async def scenario(registry: ModelRegistry) -> None:
        iris = registry.entry("iris")
        assert not iris.loaded
        assert sorted(iris.failed) == [1, 2]
        assert all(why.startswith("config.pbtxt is invalid: ") for why in iris.failed.values())
        assert (ready_gauge("iris", 1), ready_gauge("iris", 2)) == (0.0, 0.0)  # never loaded

    serve(root, scenario)


def test_an_invalid_config_on_reload_keeps_the_versions_serving(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        serving = dict(registry.entry("iris").loaded)
        (root / "iris" / CONFIG_FILE).write_text("max_batch_size: -3\n")
        entry = await registry.load("iris")
        assert entry.loaded == serving
        assert sorted(entry.failed) == [1, 2]
        assert (await registry.get("iris").infer(IRIS_ROW, 30)).argmax() == 0
        assert (ready_gauge("iris", 1), ready_gauge("iris", 2)) == (1.0, 1.0)  # still serving

    serve(root, scenario)


def test_reloading_unchanged_versions_keeps_them_serving(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        before = dict(registry.entry("iris").loaded)
        entry = await registry.load("iris")
        assert entry is registry.entry("iris")
        assert all(entry.loaded[v] is model for v, model in before.items())
        assert (await registry.get("iris").infer(IRIS_ROW, 30)).argmax() == 0

    serve(root, scenario)


def test_a_changed_version_is_reloaded_and_the_old_one_retired(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        old = registry.get("iris", "2")
        kept = registry.get("iris", "1")
        (root / "iris" / "2" / "curves.png").unlink()  # not a file the runtime reads
        card = json.loads((root / "iris" / "2" / CARD_FILE).read_text())
        card["description"] = "retrained"
        (root / "iris" / "2" / CARD_FILE).write_text(json.dumps(card))
        await registry.load("iris")
        new = registry.get("iris", "2")
        assert new is not old
        assert new.card.description == "retrained"
        assert registry.get("iris", "1") is kept
        assert (await new.infer(IRIS_ROW, 30)).argmax() == 0
        with pytest.raises(Unavailable):  # stopped: it takes no more requests
            await old.batcher.infer(IRIS_ROW, 30)
        assert (await kept.infer(IRIS_ROW, 30)).argmax() == 0
        assert ready_gauge("iris", 2) == 1.0

    serve(root, scenario)


def test_a_failed_reload_keeps_serving_what_works(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        serving = registry.get("iris", "2")
        onnx = root / "iris" / "2" / ONNX_FILE
        onnx.write_bytes(onnx.read_bytes() + b"\0")
        entry = await registry.load("iris")
        assert entry.failed[2].startswith("sha256 of model.onnx is ")
        assert registry.get("iris", "2") is serving
        assert (await serving.infer(IRIS_ROW, 30)).argmax() == 0
        assert [row.state for row in registry.index() if row.name == "iris"] == [READY, READY]

    serve(root, scenario)


def trusted_list(path: Path, *files: Path) -> Path:
    path.write_text("".join(f"{sha256_of(file)}  {file.name}\n" for file in files))
    return path


def test_a_trusted_list_loads_only_the_files_it_names(root: Path, tmp_path: Path) -> None:
    trusted = trusted_list(tmp_path / "trusted.txt", root / "iris" / "2" / ONNX_FILE)

    async def scenario(registry: ModelRegistry) -> None:
        iris = registry.entry("iris")
        assert sorted(iris.loaded) == [2]
        assert "is not in the trusted list" in iris.failed[1]
        assert registry.entry("regression").loaded == {}

    serve(root, scenario, trusted_hashes=trusted)


def test_a_withdrawn_hash_stops_an_unchanged_version(root: Path, tmp_path: Path) -> None:
    iris = root / "iris"
    files = (iris / "1" / MODEL_FILE, iris / "2" / ONNX_FILE)
    trusted = trusted_list(tmp_path / "trusted.txt", *files)

    async def scenario(registry: ModelRegistry) -> None:
        withdrawn, kept = registry.get("iris", "2"), registry.get("iris", "1")
        trusted_list(trusted, files[0])
        entry = await registry.load("iris")
        assert sorted(entry.loaded) == [1]
        assert entry.loaded[1] is kept
        assert entry.failed[2] == (  # the file that runs, ONNX here, is the one named
            f"sha256 of {ONNX_FILE} ({sha256_of(files[1])}) is not in the trusted list "
            "(SERVE_TRUSTED_HASHES)"
        )
        with pytest.raises(Unavailable):
            await withdrawn.batcher.infer(IRIS_ROW, 30)
        assert ready_gauge("iris", 2) == 0.0
        assert registry.get("iris").version == 1

    serve(root, scenario, trusted_hashes=trusted)


def test_a_trusted_list_that_cannot_be_read_loads_nothing(root: Path, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.txt"
    trusted.write_text("not a digest\n")

    async def scenario(registry: ModelRegistry) -> None:
        expected = "the trusted list (SERVE_TRUSTED_HASHES) cannot be used: line 1 is not a"
        for name in ("iris", "regression"):
            entry = registry.entry(name)
            assert entry.loaded == {}
            assert all(why.startswith(expected) for why in entry.failed.values())
        trusted.unlink()
        entry = await registry.load("iris")
        assert entry.failed[1] == (
            "the trusted list (SERVE_TRUSTED_HASHES) cannot be used: No such file or directory"
        )

    serve(root, scenario, trusted_hashes=trusted)


def test_unload_stops_serving_and_load_brings_the_model_back(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        model = registry.get("iris")
        await registry.unload("iris")
        assert "iris" not in registry.entries
        assert "iris" in registry.unloaded
        with pytest.raises(Unavailable):
            await model.batcher.infer(IRIS_ROW, 30)
        with pytest.raises(ModelNotFound) as gone:
            registry.get("iris")
        assert str(gone.value) == ("model 'iris' is unloaded; POST /v2/repository/models/iris/load")
        assert registry.index()[:2] == [
            IndexEntry("iris", "1", UNAVAILABLE, "unloaded"),
            IndexEntry("iris", "2", UNAVAILABLE, "unloaded"),
        ]
        assert ready_gauge("iris", 1) == 0.0
        assert ready_gauge("iris", 2) == 0.0
        await registry.unload("iris")  # again: nothing to do, as in Triton
        with pytest.raises(ModelNotFound, match=r"^no model 'mnist' in the model repository$"):
            await registry.unload("mnist")
        await registry.load("iris")
        assert "iris" not in registry.unloaded
        assert (await registry.get("iris").infer(IRIS_ROW, 30)).argmax() == 0
        assert ready_gauge("iris", 2) == 1.0

    serve(root, scenario)


def test_a_model_on_disk_but_never_loaded_can_be_unloaded(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        copy_bundled(root, "binary")
        assert registry.index()[:2] == [
            IndexEntry("binary", "1", UNAVAILABLE, "not loaded"),
            IndexEntry("binary", "2", UNAVAILABLE, "not loaded"),
        ]
        await registry.unload("binary")  # nothing to stop: not marked unloaded either
        assert registry.unloaded == set()
        assert registry.index()[0] == IndexEntry("binary", "1", UNAVAILABLE, "not loaded")

    serve(root, scenario)


def test_the_index_lists_the_loaded_models_after_one_not_loaded(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        copy_bundled(root, "binary")  # sorts first, and is not loaded until a poll
        assert registry.index() == [
            IndexEntry("binary", "1", UNAVAILABLE, "not loaded"),
            IndexEntry("binary", "2", UNAVAILABLE, "not loaded"),
            IndexEntry("iris", "1", READY, ""),
            IndexEntry("iris", "2", READY, ""),
            IndexEntry("regression", "1", READY, ""),
            IndexEntry("regression", "2", READY, ""),
        ]

    serve(root, scenario)


def test_a_poll_that_reads_the_repository_again_makes_it_ready(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scan_problem` is None once the repository reads again: readiness asks `is not None`."""
    scan = ModelRegistry.scan

    def unreadable(registry: ModelRegistry) -> dict:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ModelRegistry, "scan", unreadable)

    async def scenario(registry: ModelRegistry) -> None:
        assert registry.scan_problem == "the model repository cannot be read: Permission denied"
        monkeypatch.setattr(ModelRegistry, "scan", scan)
        await registry.poll()
        assert registry.scan_problem is None
        assert registry.get("iris").version == 2

    serve(root, scenario)


def test_poll_loads_new_and_changed_models_and_unloads_removed_ones(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        iris, regression = registry.get("iris"), registry.get("regression")
        await registry.poll()  # nothing changed: nothing reloaded
        assert registry.get("iris") is iris
        assert registry.get("regression") is regression
        copy_bundled(root, "binary")
        shutil.rmtree(root / "regression")
        card = root / "iris" / "2" / CARD_FILE
        card.write_text(card.read_text().replace("Iris species", "Iris"))
        await registry.poll()
        assert sorted(registry.entries) == ["binary", "iris"]
        assert registry.get("binary").version == 2
        assert registry.get("iris") is not iris
        assert registry.get("iris", "1") is not None
        assert registry.unloaded == set()  # it left: not "unloaded", just gone
        with pytest.raises(Unavailable):
            await regression.batcher.infer(np.zeros((1, regression.runtime.features)), 30)
        await registry.poll()
        assert registry.get("binary") is registry.get("binary")

    serve(root, scenario)


def test_poll_retries_a_model_whose_load_failed_only_once_its_files_change(root: Path) -> None:
    break_card(root / "iris" / "1")

    async def scenario(registry: ModelRegistry) -> None:
        serving = registry.get("iris", "2")
        await registry.poll()
        assert registry.get("iris", "2") is serving
        assert 1 in registry.entry("iris").failed
        shutil.copy(MODELS_DIR / "iris" / "1" / CARD_FILE, root / "iris" / "1" / CARD_FILE)
        await registry.poll()
        assert registry.get("iris", "1").version == 1
        assert not registry.entry("iris").failed

    serve(root, scenario)


def test_poll_loads_a_model_unloaded_through_the_api_only_once_it_changes(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        await registry.unload("iris")
        await registry.poll()
        assert "iris" not in registry.entries
        (root / "iris" / "1" / "notes.txt").write_text("retrained")
        await registry.poll()
        assert registry.get("iris").version == 2

    serve(root, scenario)


def test_statistics_of_a_version_a_model_and_every_model(root: Path) -> None:
    async def scenario(registry: ModelRegistry) -> None:
        before = registry.statistics("iris", "2")[0]["execution_count"]
        await registry.get("iris").infer(IRIS_ROW, 30)
        (one,) = registry.statistics("iris", "2")
        assert (one["name"], one["version"]) == ("iris", "2")
        assert one["execution_count"] == before + 1
        assert [(s["name"], s["version"]) for s in registry.statistics("iris")] == [
            ("iris", "1"),
            ("iris", "2"),
        ]
        assert [(s["name"], s["version"]) for s in registry.statistics()] == [
            ("iris", "1"),
            ("iris", "2"),
            ("regression", "1"),
            ("regression", "2"),
        ]
        with pytest.raises(ModelNotFound):
            registry.statistics("mnist")
        with pytest.raises(ModelNotFound):
            registry.statistics("iris", "7")

    serve(root, scenario)


def test_stop_drains_every_batcher(root: Path) -> None:
    async def main() -> None:
        registry = registry_of(root)
        await registry.start()
        models = [m for e in registry.entries.values() for m in e.loaded.values()]
        await registry.stop()
        for model in models:
            with pytest.raises(Unavailable):
                await model.batcher.infer(IRIS_ROW, 30)

    asyncio.run(main())


def test_a_model_whose_files_cannot_be_listed_still_starts_and_is_tried_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file walk fails (an unreadable directory): start goes on, the model serves, and
    no fingerprint is kept, so the next poll loads it again."""
    listed = ModelRegistry.fingerprint

    def unlistable(registry: ModelRegistry, name: str) -> tuple:
        if name == "regression":
            raise PermissionError(13, "Permission denied")
        return listed(registry, name)

    monkeypatch.setattr(ModelRegistry, "fingerprint", unlistable)

    async def scenario(registry: ModelRegistry) -> None:
        assert sorted(registry.entry("regression").loaded) == [1, 2]
        assert "regression" not in registry._fingerprints
        assert "iris" in registry._fingerprints

    serve(root, scenario)
