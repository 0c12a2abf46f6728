"""The optional API key, in-process: which endpoints it guards and how it is presented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.http.app import create_app
from service.settings import Settings
from tests.conftest import ROOT, copy_bundled
from tests.service.conftest import wait_ready

KEY = "s3cret-key"
IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
V2_IRIS = {
    "inputs": [
        {"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}
SAMPLE_DIGIT = ROOT / "samples" / "seven.png"
GUARDED = [
    ("GET", "/v1/models"),
    ("GET", "/v1/models/iris"),
    ("POST", "/v1/models/iris:predict"),
    ("POST", "/v1/models/iris/versions/1:predict"),
    ("POST", "/v1/models/mnist:predict-image"),
    ("POST", "/v1/models/mnist/versions/2:predict-image"),
    ("GET", "/v1/models/iris/versions/1/curves.png"),
    ("GET", "/v2/models/iris"),
    ("GET", "/v2/models/iris/versions/1"),
    ("GET", "/v2/models/iris/ready"),
    ("GET", "/v2/models/iris/versions/1/ready"),
    ("POST", "/v2/models/iris/infer"),
    ("POST", "/v2/models/iris/versions/1/infer"),
    ("POST", "/v2/repository/index"),
    ("POST", "/v2/repository/models/iris/load"),
    ("POST", "/v2/repository/models/iris/unload"),
]
OPEN = ["/v2", "/v2/health/live", "/v2/health/ready", "/schema/openapi.json", "/metrics"]


def client_for(tmp_path: Path, **settings: object) -> TestClient:
    root = tmp_path / "models"
    if not root.is_dir():  # a second client in the same test serves the same copy
        copy_bundled(root, "iris", "mnist")
    return TestClient(create_app(Settings(models=root, device="cpu", **settings)))


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[TestClient]:
    with client_for(tmp_path, api_key=KEY) as client:
        wait_ready(client)
        yield client


def call(client: TestClient, method: str, path: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    if path.endswith(":predict-image"):
        headers = {**(headers or {}), "Content-Type": "image/png"}
        return client.post(path, content=SAMPLE_DIGIT.read_bytes(), headers=headers)
    if path.startswith("/v2/repository"):
        return client.post(path, headers=headers)
    if method == "POST":
        body = (
            IRIS
            if path.startswith("/v1")
            else {
                "inputs": [
                    {"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
                ]
            }
        )
        return client.post(path, json=body, headers=headers)
    return client.get(path, headers=headers)


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_model_endpoints_need_the_key(guarded: TestClient, method: str, path: str) -> None:
    missing = call(guarded, method, path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in missing.json()["error"]
    wrong = call(guarded, method, path, {"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert call(guarded, method, path, {"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert call(guarded, method, path, {"X-API-Key": KEY}).status_code == 200


@pytest.mark.parametrize("path", OPEN)
def test_health_schema_and_metrics_stay_open(guarded: TestClient, path: str) -> None:
    assert guarded.get(path).status_code == 200


def test_metrics_can_require_the_key(tmp_path: Path) -> None:
    with client_for(tmp_path, api_key=KEY, metrics_require_key=True) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200


def test_no_key_configured_means_open(tmp_path: Path) -> None:
    with client_for(tmp_path, api_key="") as client:
        wait_ready(client)
        assert client.post("/v1/models/iris:predict", json=IRIS).status_code == 200


def test_cors_is_off_by_default_and_configurable(tmp_path: Path) -> None:
    origin = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with client_for(tmp_path) as client:
        assert (
            "access-control-allow-origin"
            not in client.options("/v1/models", headers=origin).headers
        )
    with client_for(tmp_path, cors_origins=["https://app.example"]) as client:
        allowed = client.options("/v1/models", headers=origin)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.parametrize("path", ["/v1/models/iris:predict", "/v2/models/iris/infer"])
def test_a_cors_request_to_an_inference_route_gets_its_cors_headers(
    tmp_path: Path, path: str
) -> None:
    """The inference routes skip Litestar's router, but not its CORS middleware."""
    body = IRIS if path.startswith("/v1") else V2_IRIS
    with client_for(tmp_path, cors_origins=["https://app.example"]) as client:
        wait_ready(client)
        answer = client.post(path, json=body, headers={"Origin": "https://app.example"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in client.post(path, json=body).headers
