"""Schemathesis against the server's own OpenAPI document: every operation, generated cases.

Each case goes to a real server; its answer must not be a 5xx and must be what the document
promises: a documented status code, the documented content type, a body that fits the
documented schema. Generation is seeded and derandomised, with no example database, so every
run sends the same cases. Beside the generated cases, a few handwritten ones reach what random
bodies rarely do (a 200 from every kind of predict, a model that failed to load) and are held
to the same document.

The document is built at collection time by the same `create_app` the server runs (pytest
parametrizes before any fixture, so before a server is up), and the first test checks that it
is the one the server serves at /schema/openapi.json. Schemathesis's fixture loader
(`schemathesis.pytest.from_fixture`) would fetch it from the server instead, but as of 4.32 it
sets `Function._nodeid`, which pytest 9.2 removed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar.serialization import encode_json
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.http.app import create_app
from service.settings import Settings
from tests.conftest import ROOT
from tests.service.conftest import Server, start_server

SEED = 20240601
EXAMPLES_PER_OPERATION = 20  # the fuzzing phase's; the examples and coverage phases add theirs
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
CHECKS = [not_a_server_error, *CONFORMANCE]

# Random path segments only ever find 404, so most generated cases name a serving model (the
# rest are generated freely), and their bodies reach the decoders, the batcher and the models.
# The fixture repository's broken models are left to their own test: not being ready, they
# answer 503 by design, which `not_a_server_error` would count.
MODELS = ["iris", "mnist", "regression", "binary", "nope"]
VERSIONS = ["1", "2", "x"]
VERBS = ("predict", "predict-image")
TARGETS = [f"{model}:{verb}" for model in MODELS[:4] for verb in VERBS]
VERSION_TARGETS = [f"{version}:{verb}" for version in VERSIONS for verb in VERBS]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"database": "none", "deterministic": True},
        "dictionaries": {
            "models": {"values": MODELS},
            "targets": {"values": TARGETS},
            "version_targets": {"values": VERSION_TARGETS},
            "versions": {"values": VERSIONS},
        },
        "parameters": {
            "path.name": {"dictionary": "models", "probability": 0.8},
            "path.target": {"dictionary": "targets", "probability": 0.8},
            "path.version": {"dictionary": "versions", "probability": 0.8},
        },
        "operations": [
            {
                "include-path": "/v1/models/{name}/versions/{target}",
                "parameters": {
                    "path.target": {"dictionary": "version_targets", "probability": 0.8}
                },
            }
        ],
    }
)
DOCUMENT = json.loads(encode_json(create_app(Settings()).openapi_schema.to_schema()))
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
# Schemathesis ships sample files for png, jpeg, webp and gif bodies only; raw bytes for the
# other two documented upload types, rather than skipping their cases.
schemathesis.serializer.alias(["image/bmp", "image/tiff"], "application/octet-stream")

SENT: Counter[str] = Counter()  # generated cases by operation and status, printed at the end
DIGIT = (ROOT / "tests" / "fixtures" / "uploads" / "scan_000.jpg").read_bytes()
V2_IRIS = {
    "inputs": [
        {"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


@pytest.fixture(scope="module")
def fuzz_server(test_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, configured as the session one: the fuzzer calls every operation,
    the repository's load and unload included, and must not unload models that other tests
    use."""
    log_path = tmp_path_factory.mktemp("fuzz-server") / "server.log"
    server = start_server(
        test_repo, log_path, max_queue_size="256", request_timeout_s="60", drain_timeout_s="60"
    )
    yield server
    server.stop()
    if SENT:
        print(f"\nschemathesis: {sum(SENT.values())} generated cases: {dict(sorted(SENT.items()))}")


@pytest.fixture
def loaded(fuzz_server: Server) -> Server:
    """The fuzz server with every bundled model loaded (the fuzzer may have unloaded some)."""
    for model in MODELS[:4]:
        response = httpx.post(
            f"{fuzz_server.base_url}/v2/repository/models/{model}/load", timeout=60
        )
        assert response.status_code == 200, response.text
    return fuzz_server


def test_the_document_is_the_one_the_server_serves(fuzz_server: Server) -> None:
    served = httpx.get(f"{fuzz_server.base_url}/schema/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_schema(
    case: schemathesis.Case, fuzz_server: Server
) -> None:
    response = case.call_and_validate(base_url=fuzz_server.base_url, checks=CHECKS, timeout=30)
    SENT[f"{case.operation.label} {response.status_code}"] += 1


def operation(label: str) -> Any:
    found = schema.find_operation_by_label(label)
    assert found is not None, f"{label} is not in the document"
    return found


ANSWERED = [
    # (operation, path parameters, media type, body)
    (
        "POST /v1/models/{target}",
        {"target": "iris:predict"},
        "application/json",
        {"instances": [[5.1, 3.5, 1.4, 0.2]]},
    ),
    (
        "POST /v1/models/{target}",
        {"target": "regression:predict"},
        "application/json",
        {"instances": [[0.1] * 500]},
    ),
    (
        "POST /v1/models/{name}/versions/{target}",
        {"name": "binary", "target": "1:predict"},
        "application/json",
        {"instances": [[0.0] * 200]},
    ),
    ("POST /v1/models/{target}", {"target": "mnist:predict-image"}, "image/jpeg", DIGIT),
    (
        "POST /v1/models/{name}/versions/{target}",
        {"name": "mnist", "target": "1:predict-image"},
        "multipart/form-data",
        {"file": [DIGIT]},
    ),
    ("POST /v2/models/{name}/infer", {"name": "iris"}, "application/json", V2_IRIS),
    (
        "POST /v2/models/{name}/versions/{version}/infer",
        {"name": "iris", "version": "1"},
        "application/json",
        V2_IRIS,
    ),
]


@pytest.mark.parametrize(
    ("label", "path_parameters", "media_type", "body"),
    ANSWERED,
    ids=[f"{case[0]} {case[2]}" for case in ANSWERED],
)
def test_successful_predictions_conform(
    loaded: Server, label: str, path_parameters: dict, media_type: str, body: Any
) -> None:
    case = operation(label).Case(path_parameters=path_parameters, media_type=media_type, body=body)
    response = case.call_and_validate(base_url=loaded.base_url, checks=CHECKS, timeout=30)
    assert response.status_code == 200, response.text


def with_model_name(label: str) -> bool:
    return "{name}" in label or "{target}" in label


NOT_READY = [
    result.ok().label
    for result in schema.get_all_operations()
    if with_model_name(result.ok().label)
]


@pytest.mark.parametrize("label", NOT_READY)
def test_a_model_that_failed_to_load_is_answered_as_documented(
    fuzz_server: Server, label: str
) -> None:
    """`corrupt` failed to load (its model.pt is not TorchScript): every operation on it must
    answer a documented status (503 for inference and readiness, by design) with a JSON error."""
    known = {"name": "corrupt", "version": "1"}
    target = "1:predict" if "versions/{target}" in label else "corrupt:predict"
    path_parameters = {
        key: target if key == "target" else known[key]
        for key in ("name", "version", "target")
        if "{" + key + "}" in label
    }
    found = operation(label)
    body = V2_IRIS if label.endswith("infer") else {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    if found.method.upper() == "POST" and "repository" not in label:
        case = found.Case(path_parameters=path_parameters, media_type="application/json", body=body)
    else:
        case = found.Case(path_parameters=path_parameters)
    response = case.call_and_validate(base_url=fuzz_server.base_url, checks=CONFORMANCE, timeout=30)
    if response.status_code >= 400:
        assert list(response.json()) == ["error"], response.text
