"""A repository with hostile or broken files: each bad version is unready with its reason, one
log line names it, everything else serves, and a model file outside the operator's trusted list
is never unpickled."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from torch import nn

from bench.launch import launch, terminate
from modelrepo import torchscript
from modelrepo.config import BatchingConfig
from modelrepo.layout import sha256_of
from service.loading import LoadPolicy, load_version
from tests.conftest import MODELS_DIR, ROOT
from tests.service.conftest import Server, start_server, wait_until

IRIS_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


class Sneaky(nn.Module):
    """A model whose unpickling writes to a file: what a hostile model.pt can do at load."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x[:, :3], dim=1)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.path = state[0]
        self.training = state[1]
        marker = torch.from_file(self.path, shared=True, size=1, dtype=torch.int64)
        marker[0] += 1
        if int(marker[0]) < 0:  # uses the value, or TorchScript drops the write as dead code
            raise RuntimeError("unreachable")


def copy_iris(root: Path, name: str = "iris") -> Path:
    """iris/1 and its config under another name, card renamed to match."""
    target = root / name
    shutil.copytree(MODELS_DIR / "iris" / "1", target / "1")
    shutil.copy(MODELS_DIR / "iris" / "config.pbtxt", target / "config.pbtxt")
    card = json.loads((target / "1" / "card.json").read_text())
    card["name"] = name
    (target / "1" / "card.json").write_text(json.dumps(card))
    return target


def edit_card(model_dir: Path, change: dict) -> None:
    path = model_dir / "1" / "card.json"
    card = json.loads(path.read_text())
    for key, value in change.items():
        section, _, field = key.partition(".")
        if field:
            card[section][field] = value
        else:
            card[section] = value
    path.write_text(json.dumps(card))


def sneaky_model(root: Path, marker: Path) -> Path:
    model_dir = copy_iris(root, "sneaky")
    path = model_dir / "1" / "model.pt"
    torchscript.save(torchscript.script(Sneaky(str(marker))), path)
    edit_card(model_dir, {"sha256": sha256_of(path)})
    return path


def marker_count(marker: Path) -> int:
    return int(np.fromfile(marker, dtype=np.int64)[0])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A repository of iris and one broken model per way a file can be bad."""
    root = tmp_path_factory.mktemp("hostile") / "models"
    copy_iris(root)
    (copy_iris(root, "undecodable") / "1" / "card.json").write_bytes(b"\xff\xfe")
    card_dir = copy_iris(root, "carddir") / "1" / "card.json"
    card_dir.unlink()
    card_dir.mkdir()
    edit_card(copy_iris(root, "wide"), {"input": {"shape": [-1, 1_000_000_000]}})
    huge = copy_iris(root, "hugebatch") / "config.pbtxt"
    huge.write_text(huge.read_text().replace("max_batch_size: 256", "max_batch_size: 1000000000"))
    staging = copy_iris(root, "staging") / "config.pbtxt"  # 65,536 x 4 x 4 bytes > 512 KiB
    staging.write_text(staging.read_text().replace("max_batch_size: 256", "max_batch_size: 65536"))
    marker = root.parent / "marker.bin"
    np.zeros(1, dtype=np.int64).tofile(marker)
    sneaky_model(root, marker)
    return root, marker


@pytest.fixture(scope="module")
def guarded(hostile: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Server:
    root, _ = hostile
    trusted = root.parent / "trusted.sha256"
    iris = sha256_of(root / "iris" / "1" / "model.pt")
    trusted.write_text(f"# the operator's list\n{iris}  iris/1/model.pt\n\n")
    log = tmp_path_factory.mktemp("hostile-server") / "server.log"
    server = start_server(root, log, trusted_hashes=str(trusted), max_staging_bytes=str(1 << 19))
    yield server
    server.stop()


BROKEN = {
    "undecodable": "card.json is invalid",
    "carddir": "card.json is a directory",
    "wide": "more than 1048576 features",
    "hugebatch": "max_batch_size 1000000000 is outside 0..65536",
    "staging": "above SERVE_MAX_STAGING_BYTES (524288)",
    "sneaky": "is not in the trusted list (SERVE_TRUSTED_HASHES)",
}


def test_the_server_gets_ready_and_serves_what_works(guarded: Server) -> None:
    with guarded.client() as http:
        assert http.get("/v2/health/ready").status_code == 200
        answer = http.post("/v1/models/iris:predict", json=IRIS_ROW)
        assert answer.status_code == 200


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_bad_version_is_unready_with_its_reason(guarded: Server, name: str) -> None:
    with guarded.client() as http:
        status = http.get(f"/v1/models/{name}").json()
        ready = http.get(f"/v2/models/{name}/ready")
    assert status["ready"] is False
    assert BROKEN[name] in status["failed_versions"]["1"]
    assert ready.status_code == 503
    assert BROKEN[name] in ready.json()["error"]
    lines = [json.loads(line) for line in guarded.log().splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] == "error" and line.get("model") == name] or [
        line for line in lines if line["level"] == "error" and f"model {name} " in line["message"]
    ]
    assert len(errors) == 1
    assert BROKEN[name] in errors[0]["message"]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_load_api_answers_400_with_the_reason(guarded: Server, name: str) -> None:
    with guarded.client() as http:
        answer = http.post(f"/v2/repository/models/{name}/load")
    assert answer.status_code == 400
    assert BROKEN[name] in answer.json()["error"]


def test_an_untrusted_model_file_is_never_unpickled(
    guarded: Server, hostile: tuple[Path, Path]
) -> None:
    _, marker = hostile
    with guarded.client() as http:  # after start-up and a reload through the API
        http.post("/v2/repository/models/sneaky/load")
    assert marker_count(marker) == 0


def test_the_sneaky_model_really_runs_code_at_load(tmp_path: Path) -> None:
    """Without a trusted list the same file runs its code when it is loaded: the list is what
    stops it, not something about the file."""
    marker = tmp_path / "marker.bin"
    np.zeros(1, dtype=np.int64).tofile(marker)
    sneaky_model(tmp_path / "models", marker)
    policy = LoadPolicy(torch.device("cpu"), warmup=False, max_staging_bytes=1 << 20)
    load_version(tmp_path / "models" / "sneaky" / "1", "sneaky", BatchingConfig(8, 0.0), policy)
    assert marker_count(marker) == 1


@pytest.mark.parametrize(
    "name", ["x" * 5000, "..", "iris%2F..", "a%00b"], ids=["long", "dots", "encoded", "nul"]
)
def test_names_that_cannot_be_models_are_404(guarded: Server, name: str) -> None:
    with guarded.client() as http:
        answer = http.post(f"/v2/repository/models/{name}/load")
    assert answer.status_code == 404
    assert str(Path.cwd()) not in answer.text
    assert "/tmp" not in answer.text


def test_an_unreadable_trusted_list_refuses_every_version(tmp_path: Path) -> None:
    root = tmp_path / "models"
    copy_iris(root)
    server = start_server(
        root, tmp_path / "server.log", trusted_hashes=str(tmp_path / "missing.sha256")
    )
    try:
        with server.client() as http:
            status = http.get("/v1/models/iris").json()
    finally:
        server.stop()
    assert status["ready"] is False
    assert "trusted list (SERVE_TRUSTED_HASHES) cannot be used" in status["failed_versions"]["1"]


def test_readiness_says_why_when_the_repository_cannot_be_read(tmp_path: Path) -> None:
    """As root no permission makes a directory unreadable, but a path longer than the file
    system takes makes its listing fail all the same."""
    root = tmp_path / "/".join(["d" * 250] * 20)
    env = {**os.environ, "SERVE_DRAIN_DELAY_S": "0", "SERVE_GRPC_PORT": "0"}
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", "0"]
    process, base_url = launch(
        [*command, "--models", str(root), "--device", "cpu"],
        tmp_path / "server.log",
        cwd=ROOT,
        env=env,
        ready_path="/v2/health/live",
    )
    try:
        wait_until(
            lambda: "cannot be read" in (tmp_path / "server.log").read_text(), "the scan's error"
        )
        ready = httpx.get(f"{base_url}/v2/health/ready")
    finally:
        terminate(process)
    assert ready.status_code == 503
    assert ready.json()["error"] == "the model repository cannot be read: File name too long"
    assert "the model repository cannot be read" in (tmp_path / "server.log").read_text()
