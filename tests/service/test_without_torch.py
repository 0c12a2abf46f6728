"""The core install serves without torch: a server in which `import torch` fails serves every
version that has an ONNX file through ONNX Runtime, and says what the TorchScript-only ones
need."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from modelrepo import layout
from tests.conftest import BUNDLED_VERSIONS, MODELS_DIR, copy_bundled
from tests.service.conftest import Server, start_server

NO_TORCH = '''
import sys


class NoTorch:
    """As if torch were not installed: every import of it, and every look-up, fails."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTorch())
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("no-torch")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(NO_TORCH)
    models = copy_bundled(root / "models")
    started = start_server(models, root / "server.log", python_path=root / "site")
    yield started
    started.stop()


def onnx_versions(name: str) -> set[str]:
    return {
        v for v in BUNDLED_VERSIONS[name] if (MODELS_DIR / name / v / layout.ONNX_FILE).exists()
    }


def test_no_version_fails_on_an_import_of_torch(server: Server) -> None:
    assert "No module named 'torch'" not in server.log()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    missing = [line for line in lines if "needs torch" in line["message"]]
    assert {line["message"].split(" not loaded")[0] for line in missing} >= {
        "model iris version 1",
        "model mnist version 2",
    }
    assert {line["level"] for line in missing} == {"warning"}  # expected here, not an error


@pytest.mark.parametrize("name", sorted(BUNDLED_VERSIONS))
def test_onnx_versions_serve_and_torchscript_ones_say_what_they_need(
    server: Server, name: str
) -> None:
    status = httpx.get(f"{server.base_url}/v1/models/{name}", timeout=30).json()
    assert status["ready"]
    assert set(status["stats"]) == onnx_versions(name) != set()
    for version in onnx_versions(name):
        assert (status["stats"][version]["runtime"], status["stats"][version]["device"]) == (
            "onnxruntime",
            "cpu",
        )
    for version in set(BUNDLED_VERSIONS[name]) - onnx_versions(name):
        assert status["failed_versions"][version] == (
            "model.pt needs torch: pip install 'mlp-serve[torch]'"
        )


def test_predictions_and_uploads_are_answered(server: Server) -> None:
    iris = httpx.post(
        f"{server.base_url}/v1/models/iris:predict",
        json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]},
        timeout=30,
    )
    assert iris.status_code == 200, iris.text
    assert [p["class_name"] for p in iris.json()["predictions"]] == ["setosa", "virginica"]
    digit = (MODELS_DIR.parent / "samples" / "seven.png").read_bytes()
    upload = httpx.post(
        f"{server.base_url}/v1/models/mnist:predict-image",
        files={"file": ("seven.png", digit, "image/png")},
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["predictions"][0]["label"] == 7
