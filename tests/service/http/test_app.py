"""The app in-process (Litestar's TestClient): lifespan, readiness, settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from litestar.testing import TestClient
from pydantic import ValidationError

from service.__main__ import main as serve_main
from service.http.app import create_app
from service.settings import Settings
from tests.conftest import copy_bundled
from tests.service.conftest import wait_ready, wait_until
from tests.service.fixture_models import Gate, write_gated_model


def test_ready_only_once_every_model_is_warmed_up(tmp_path: Path) -> None:
    gate = Gate(tmp_path / "gate.bin")
    gate.close()  # warm-up of the gated model will wait here
    root = copy_bundled(tmp_path / "models", "iris")
    write_gated_model(root, gate, max_batch_size=4)
    app = create_app(Settings(models=root, device="cpu"))
    try:
        with TestClient(app) as client:
            # Leaving TestClient waits for the warm-up, so the gate opens inside it whatever fails.
            try:
                wait_until(lambda: gate.entries > 0, "the warm-up pass inside the model")
                assert client.get("/v2/health/live").status_code == 200
                not_ready = client.get("/v2/health/ready")
                assert not_ready.status_code == 503
                assert not_ready.headers["Retry-After"] == "1"
                assert "still loading" in not_ready.json()["error"]
                rows = {"instances": [[1, 2, 3, 4]]}
                loading = client.post("/v1/models/iris:predict", json=rows)
                assert loading.status_code == 503  # not 404: the model may well exist
                assert "still loading" in loading.json()["error"]
            finally:
                gate.open()
            wait_ready(client)
            assert client.get("/v1/models").json() == {"models": ["gated", "iris"]}
    finally:
        gate.open()


def test_empty_repository_serves_nothing_but_is_alive(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(models=tmp_path / "missing", device="cpu"))) as client:
        wait_ready(client)
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v1/models").json() == {"models": []}
        assert client.post("/v1/models/iris:predict", json={"instances": [[1]]}).status_code == 404


def test_highest_version_is_the_default_and_all_are_addressable(tmp_path: Path) -> None:
    import json

    root = copy_bundled(tmp_path / "models", "iris")
    shutil.copytree(root / "iris" / "1", root / "iris" / "3")
    card = json.loads((root / "iris" / "3" / "card.json").read_text())
    card["version"] = 3
    (root / "iris" / "3" / "card.json").write_text(json.dumps(card))
    with TestClient(create_app(Settings(models=root, device="cpu"))) as client:
        wait_ready(client)
        status = client.get("/v1/models/iris").json()
        assert (status["versions"], status["default_version"]) == (["1", "2", "3"], "3")
        rows = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
        assert client.post("/v1/models/iris:predict", json=rows).json()["model_version"] == "3"
        pinned = client.post("/v1/models/iris/versions/1:predict", json=rows)
        assert pinned.json()["model_version"] == "1"
        assert client.get("/v2/models/iris").json()["versions"] == ["1", "2", "3"]


def test_card_that_lies_about_its_place_is_not_loaded(tmp_path: Path) -> None:
    root = copy_bundled(tmp_path / "models", "iris")
    shutil.rmtree(root / "iris" / "2")
    shutil.move(root / "iris" / "1", root / "iris" / "2")
    with TestClient(create_app(Settings(models=root, device="cpu"))) as client:
        wait_ready(client)
        status = client.get("/v1/models/iris").json()
        assert status["ready"] is False
        assert "card.json says iris/1, but it lies in iris/2" in status["reason"]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVE_MAX_BATCH_SIZE", "32")
    monkeypatch.setenv("SERVE_MAX_QUEUE_DELAY_MS", "2.5")
    monkeypatch.setenv("SERVE_DEVICE", "cuda:1")
    settings = Settings()
    assert (settings.max_batch_size, settings.max_queue_delay_ms) == (32, 2.5)
    assert settings.device == "cuda:1"
    monkeypatch.setenv("SERVE_DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device must be"):
        Settings()


def test_cli_rejects_a_bad_setting_in_one_line(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    for name in ("SERVE_PORT", "SERVE_DEVICE"):  # main() writes them; restored after the test
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(name, "unset")
    assert serve_main(["--port", "not-a-port", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "port" in err
