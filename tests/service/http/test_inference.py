"""Where HTTP requests meet the batcher: large bodies are decoded off the event loop, small
ones on it (the in-process app, Litestar's TestClient)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient

from service.codecs import kserve_v1, oip_v2
from service.http.app import create_app
from service.http.inference import OFF_LOOP_BODY_BYTES
from service.settings import Settings
from tests.conftest import copy_bundled
from tests.service.conftest import wait_ready


def recording(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    """The threads that `module.name` runs on, call by call."""
    threads: list[int] = []
    decode = getattr(module, name)

    def recorded(*args: object) -> object:
        threads.append(threading.get_ident())
        return decode(*args)

    monkeypatch.setattr(module, name, recorded)
    return threads


def test_large_bodies_are_decoded_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = recording(monkeypatch, kserve_v1, "decode_rows")
    v2 = recording(monkeypatch, oip_v2, "decode_request")
    on_loop = recording(monkeypatch, kserve_v1, "check_media_type")  # the handler's own thread
    rows = np.random.default_rng(0).normal(size=(60, 500)).round(6).tolist()
    large_v1 = json.dumps({"instances": rows}).encode()
    large_v2 = json.dumps(
        {"inputs": [{"name": "INPUT__0", "shape": [60, 500], "datatype": "FP32", "data": rows}]}
    ).encode()
    assert min(len(large_v1), len(large_v2)) > OFF_LOOP_BODY_BYTES
    small_v1 = json.dumps({"instances": rows[:1]}).encode()
    app = create_app(Settings(models=copy_bundled(tmp_path, "regression"), device="cpu"))
    with TestClient(app) as client:
        wait_ready(client)
        for body in (small_v1, large_v1):
            answer = client.post("/v1/models/regression:predict", content=body)
            assert answer.status_code == 200, answer.text
        answer = client.post("/v2/models/regression/infer", content=large_v2)
        assert answer.status_code == 200, answer.text
    loop_thread = on_loop[0]
    assert v1[0] == loop_thread  # a small body: on the loop
    assert loop_thread not in (v1[1], v2[0])  # a large one: on a worker thread
