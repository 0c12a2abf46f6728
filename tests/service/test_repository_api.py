"""Model lifecycle without restart: Triton's repository extension, polling, in-flight safety."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelrepo import layout
from tests.conftest import copy_bundled
from tests.service.conftest import Server, start_server, wait_until
from tests.service.fixture_models import Gate, write_gated_model

IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def add_version(root: Path, source: Path, name: str, version: int) -> Path:
    """Publish a copy of `source` as `<name>/<version>` the way training does: a rename."""
    staging = root / f".staging-{name}-{version}"
    shutil.copytree(source, staging)
    card = json.loads((staging / "card.json").read_text())
    card["version"] = version
    (staging / "card.json").write_text(json.dumps(card))
    target = root / name / str(version)
    staging.rename(target)
    return target


def first_iris_only(root: Path) -> Path:
    """`root` with the first bundled iris version alone, for versions to be added to."""
    copy_bundled(root, "iris")
    for version_dir in layout.version_dirs(root / "iris")[1:]:
        shutil.rmtree(version_dir)
    return root


def index(http: httpx.Client) -> dict[tuple[str, str], tuple[str, str]]:
    rows = http.post("/v2/repository/index").json()
    return {(row["name"], row["version"]): (row["state"], row["reason"]) for row in rows}


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Gate]]:
    root = first_iris_only(tmp_path_factory.mktemp("lifecycle") / "models")
    gate = Gate(tmp_path_factory.mktemp("gate") / "gate.bin")
    write_gated_model(root, gate, max_batch_size=4)
    server = start_server(root, tmp_path_factory.mktemp("log") / "server.log")
    yield server, root, gate
    gate.open()
    assert server.stop() == 0


def test_a_new_version_is_loaded_verified_and_takes_the_traffic(lifecycle) -> None:  # type: ignore[no-untyped-def]
    server, root, _ = lifecycle
    with server.client() as http:
        assert index(http)[("iris", "1")] == ("READY", "")
        add_version(root, root / "iris" / "1", "iris", 2)
        assert http.post("/v1/models/iris:predict", json=IRIS).json()["model_version"] == "1"
        assert http.post("/v2/repository/models/iris/load").status_code == 200
        assert index(http)[("iris", "2")] == ("READY", "")
        assert http.post("/v1/models/iris:predict", json=IRIS).json()["model_version"] == "2"
        assert http.get("/v2/models/iris/versions/1/ready").status_code == 200

        broken = add_version(root, root / "iris" / "1", "iris", 3)
        (broken / "model.pt").write_bytes(b"not the model the card hashed")
        failed = http.post("/v2/repository/models/iris/load")
        assert failed.status_code == 400
        assert "version 3" in failed.json()["error"]
        assert "sha256" in failed.json()["error"]
        state, reason = index(http)[("iris", "3")]
        assert state == "UNAVAILABLE"
        assert "sha256" in reason
        answer = http.post("/v1/models/iris:predict", json=IRIS)
        assert answer.json()["model_version"] == "2"  # the serving version stays in place


@pytest.fixture
def iris_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A server of its own over iris alone, for tests that change what it serves."""
    root = first_iris_only(tmp_path / "models")
    server = start_server(root, tmp_path / "server.log")
    yield server, root
    assert server.stop() == 0


def iris_stats(http: httpx.Client) -> dict[str, int]:
    return http.get("/v1/models/iris").json()["stats"]["1"]


def test_reload_keeps_an_unchanged_version_and_serves_on_after_a_failure(iris_server) -> None:  # type: ignore[no-untyped-def]
    server, root = iris_server
    with server.client() as http:
        for _ in range(3):
            assert http.post("/v1/models/iris:predict", json=IRIS).status_code == 200
        served = iris_stats(http)["rows_inferred"]
        assert served >= 3
        assert http.post("/v2/repository/models/iris/load").status_code == 200
        assert iris_stats(http)["rows_inferred"] == served  # the same instance, not a reload

        (root / "iris" / "1" / "model.pt").write_bytes(b"not the model the card hashed")
        failed = http.post("/v2/repository/models/iris/load")
        assert failed.status_code == 400
        assert "versions serving: 1" in failed.json()["error"]
        answer = http.post("/v1/models/iris:predict", json=IRIS)
        assert answer.status_code == 200  # the instance that works goes on serving
        assert answer.json()["model_version"] == "1"
        assert iris_stats(http)["rows_inferred"] == served + 1


def test_unload_and_load_again(iris_server) -> None:  # type: ignore[no-untyped-def]
    server, _ = iris_server
    with server.client() as http:
        assert http.post("/v2/repository/models/iris/unload").status_code == 200
        gone = http.post("/v1/models/iris:predict", json=IRIS)
        assert gone.status_code == 404
        assert "/v2/repository/models/iris/load" in gone.json()["error"]
        assert index(http)[("iris", "1")] == ("UNAVAILABLE", "unloaded")
        ready_names = {
            row["name"] for row in http.post("/v2/repository/index", json={"ready": True}).json()
        }
        assert "iris" not in ready_names
        assert http.post("/v2/repository/models/iris/unload").status_code == 200  # idempotent
        assert http.post("/v2/repository/models/iris/load").status_code == 200
        assert http.post("/v1/models/iris:predict", json=IRIS).status_code == 200
        assert http.post("/v2/repository/models/nothing/load").status_code == 404


def test_requests_in_flight_on_an_unloaded_version_finish(lifecycle) -> None:  # type: ignore[no-untyped-def]
    server, _, gate = lifecycle
    gate.close()
    answers: list[httpx.Response] = []
    rows = {"instances": [[1.0, 2.0, 3.0, 4.0]]}

    def send() -> None:
        with server.client() as client:
            answers.append(client.post("/v1/models/gated:predict", json=rows))

    senders = [threading.Thread(target=send) for _ in range(3)]
    entries_before = gate.entries  # the warm-up passed through the gate too
    try:
        senders[0].start()
        wait_until(lambda: gate.entries > entries_before, "a batch inside the gated model")
        with server.client() as http:
            for sender in senders[1:]:
                sender.start()
            wait_until(
                lambda: http.get("/v1/models/gated").json()["stats"]["1"]["queued_rows"] == 2,
                "two requests queued behind it",
            )
            unloading = threading.Thread(
                target=lambda: answers.append(http.post("/v2/repository/models/gated/unload"))
            )
            unloading.start()
            # Poll with metadata: a predict sent before the unload would queue behind the gate.
            wait_until(
                lambda: http.get("/v1/models/gated").status_code == 404, "the model unloaded"
            )
            late = http.post("/v1/models/gated:predict", json=rows)
            assert late.status_code == 404  # new requests no longer reach the unloading model
            gate.open()
            unloading.join(timeout=60)
    finally:
        gate.open()
        for sender in senders:
            sender.join(timeout=60)
    assert sorted(answer.status_code for answer in answers) == [200, 200, 200, 200]


def test_tritonclient_drives_the_repository(lifecycle) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = lifecycle
    client = triton.InferenceServerClient(server.base_url.removeprefix("http://"))
    names = {row["name"] for row in client.get_model_repository_index()}
    assert {"iris", "gated"} <= names
    client.load_model("gated")
    assert client.is_model_ready("gated")
    client.unload_model("gated")
    assert not client.is_model_ready("gated")
    client.load_model("gated")
    assert client.is_model_ready("gated")
    with pytest.raises(InferenceServerException):
        client.load_model("no-such-model")


def test_polling_picks_up_new_and_removed_models(tmp_path: Path) -> None:
    root = first_iris_only(tmp_path / "models")
    server = start_server(root, tmp_path / "server.log", poll_interval_s="0.1")
    try:
        with server.client() as http:
            add_version(root, root / "iris" / "1", "iris", 2)
            wait_until(lambda: ("iris", "2") in index(http), "the poll to load version 2")
            assert http.post("/v1/models/iris:predict", json=IRIS).json()["model_version"] == "2"
            staging = copy_bundled(tmp_path / "staging", "binary") / "binary"
            staging.rename(root / "binary")
            wait_until(lambda: http.get("/v1/models/binary").status_code == 200, "a new model")
            shutil.rmtree(root / "binary")
            wait_until(lambda: http.get("/v1/models/binary").status_code == 404, "its removal")
    finally:
        assert server.stop() == 0
