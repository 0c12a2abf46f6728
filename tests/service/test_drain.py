"""SIGTERM on a real process with requests in flight: readiness flips, nothing accepted is lost."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

import httpx

from tests.conftest import copy_bundled
from tests.service.conftest import start_server, wait_until
from tests.service.fixture_models import Gate, write_gated_model

ROWS = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
DRAIN_DELAY_S = "60"  # ended by a second SIGTERM once the test has acted inside it


def test_sigterm_drains_every_accepted_request_and_exits_0(tmp_path: Path) -> None:
    root = tmp_path / "models"
    gate = Gate(tmp_path / "gate.bin")
    write_gated_model(root, gate, max_batch_size=2)
    server = start_server(root, tmp_path / "server.log", drain_delay_s=DRAIN_DELAY_S)
    answers: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        with server.client() as client:
            status = client.post("/v1/models/gated:predict", json=ROWS).status_code
        with lock:
            answers.append(status)

    def queued() -> int:
        with server.client(headers={"Connection": "close"}) as client:
            return client.get("/v1/models/gated").json()["stats"]["1"]["queued_rows"]

    senders = [threading.Thread(target=send) for _ in range(5)]
    try:
        gate.close()
        entries = gate.entries
        senders[0].start()
        wait_until(lambda: gate.entries > entries, "a batch held inside the model")
        for sender in senders[1:4]:
            sender.start()
        wait_until(lambda: queued() == 3, "three requests queued behind it")

        server.process.send_signal(signal.SIGTERM)
        with server.client(headers={"Connection": "close"}) as probe:
            wait_until(lambda: probe.get("/v2/health/ready").status_code == 503, "readiness 503")
            assert probe.get("/v2/health/live").status_code == 200
            senders[4].start()  # the listener is still open: this request is accepted too
            wait_until(lambda: queued() == 4, "the late request queued")
        server.process.send_signal(signal.SIGTERM)  # a second signal skips the rest of the delay
        gate.open()
        for sender in senders:
            sender.join(timeout=120)
        assert server.process.wait(timeout=120) == 0
    finally:
        gate.open()
        server.stop()
    assert answers == [200] * 5
    assert "SIGTERM: draining" in server.log()
    assert "SIGTERM again: shutting down without the rest of the drain delay" in server.log()
    try:
        httpx.get(f"{server.base_url}/v2/health/live", timeout=2)
        raise AssertionError("the listener is still open after exit")
    except httpx.TransportError:
        pass


def test_drain_timeout_bounds_a_request_that_never_ends(tmp_path: Path) -> None:
    """A request whose body stops coming (its own timeout 10 minutes off) is cut at
    SERVE_DRAIN_TIMEOUT_S: the process exits 0 instead of waiting for it."""
    models = copy_bundled(tmp_path / "models", "iris")
    server = start_server(
        models,
        tmp_path / "server.log",
        request_timeout_s="1",
        drain_timeout_s="1",
        body_timeout_s="600",
    )
    host, port = server.base_url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port))) as stalled:
            stalled.sendall(
                b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                b'{"instances": '
            )
            # Answered after the loop has read the stalled request's head, sent before it.
            with server.client(headers={"Connection": "close"}) as probe:
                assert probe.get("/v2/health/live").status_code == 200
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=60) == 0
    finally:
        server.stop()
    assert "timeout graceful shutdown exceeded" in server.log()


def test_a_second_sigterm_ends_the_delay_with_two_workers(tmp_path: Path) -> None:
    """The supervisor passes the second signal on: both workers skip the rest of a delay
    that would otherwise outlast the wait below by far."""
    models = copy_bundled(tmp_path / "models", "iris")
    server = start_server(models, tmp_path / "server.log", workers="2", drain_delay_s="600")
    try:
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: server.log().count("SIGTERM: draining") == 2, "both workers draining")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=120) == 0
    finally:
        server.stop()
    log = server.log()
    assert "SIGTERM again: passing it on to the workers" in log
    assert log.count("SIGTERM again: shutting down without the rest of the drain delay") == 2
