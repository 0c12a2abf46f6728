"""Hostile and careless requests, beyond the bad-input table: each is the client's 4xx with a
JSON error that says what to fix, never a 500, and never at another client's expense."""

from __future__ import annotations

import gzip
import io
import json
import socket
import threading
import zlib
from concurrent.futures import Future
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.fair_pool import FairPool
from tests.service.conftest import Server, start_server, wait_until
from tests.service.test_uploads import png_with_size

DEEP = "[" * 1000 + "1" + "]" * 1000


def image_bytes(fmt: str) -> bytes:
    mode = {"XBM": "1", "MSP": "1", "PALM": "1", "SPIDER": "F"}.get(fmt, "RGB")
    buffer = io.BytesIO()
    Image.new(mode, (32, 32)).save(buffer, fmt)
    return buffer.getvalue()


UNDOCUMENTED = [
    "DDS",
    "ICO",
    "PCX",
    "PPM",
    "SGI",
    "TGA",
    "XBM",
    "QOI",
    "SPIDER",
    "JPEG2000",
    "EPS",
    "ICNS",
    "MSP",
    "PALM",
    "PDF",
]


@pytest.mark.parametrize("fmt", UNDOCUMENTED)
def test_undocumented_formats_are_not_decoded(http: httpx.Client, fmt: str) -> None:
    files = {"file": (f"x.{fmt.lower()}", image_bytes(fmt), "image/png")}
    answer = http.post("/v1/models/mnist:predict-image", files=files)
    assert answer.status_code == 415, answer.text
    assert "not a readable image (PNG, JPEG, WebP, BMP, GIF or TIFF)" in answer.json()["error"]


def float_tiff(value: float) -> bytes:
    pixels = np.zeros((28, 28), dtype=np.float32)
    pixels[10:18, 12:16] = 0.8
    pixels[3, 3] = value
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="F").save(buffer, "TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_pixel_that_is_not_a_number_is_a_422_naming_the_file(
    http: httpx.Client, value: float
) -> None:
    files = {"file": ("float.tif", float_tiff(value), "image/tiff")}
    answer = http.post("/v1/models/mnist:predict-image", files=files)
    assert answer.status_code == 422
    assert answer.json()["error"] == (
        "'float.tif' cannot be used: its pixel values are not finite numbers (NaN or infinity)"
    )


def test_float_pixels_at_the_edge_of_float32_still_give_numbers(http: httpx.Client) -> None:
    pixels = np.zeros((28, 28), dtype=np.float32)
    pixels[8:20, 12:16] = 3e38
    pixels[0, 0] = -3e38
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="F").save(buffer, "TIFF")
    answer = http.post(
        "/v1/models/mnist:predict-image", files={"file": ("edge.tif", buffer.getvalue())}
    )
    assert answer.status_code == 200
    probabilities = answer.json()["predictions"][0]["probabilities"]
    assert all(isinstance(p, float) for p in probabilities)


def v2_body(data: str, parameters: str = "{}") -> bytes:
    tensor = f'{{"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32", "data": {data}}}'
    return f'{{"inputs": [{tensor}], "parameters": {parameters}}}'.encode()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v2/models/iris/infer", v2_body(DEEP)),
        ("/v2/models/iris/infer", v2_body("[1, 2, 3, 4]", f'{{"a": {DEEP}}}')),
        ("/v1/models/iris:predict", f'{{"other": {DEEP}, "instances": [[1, 2, 3, 4]]}}'.encode()),
        ("/v2/repository/models/iris/load", f'{{"parameters": {{"a": {DEEP}}}}}'.encode()),
        ("/v2/repository/index", f'{{"ready": {DEEP}}}'.encode()),
    ],
    ids=["v2 data", "v2 parameters", "v1 unknown field", "load parameters", "index"],
)
def test_json_nested_far_too_deep_is_a_400(http: httpx.Client, path: str, body: bytes) -> None:
    answer = http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "nested too deeply" in answer.json()["error"] or "not valid" in answer.json()["error"]


def test_a_utf8_byte_order_mark_is_ignored(http: httpx.Client) -> None:
    body = b"\xef\xbb\xbf" + json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    answer = http.post(
        "/v1/models/iris:predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["class_name"] == "setosa"


# ---- the image pool: budgets, fairness, time --------------------------------------------------


def test_a_request_within_each_image_limit_but_over_the_request_budget_is_413(
    http: httpx.Client,
) -> None:
    files = [("file", (f"{i}.png", png_with_size(6000, 6000), "image/png")) for i in range(3)]
    answer = http.post("/v1/models/mnist:predict-image", files=files)
    assert answer.status_code == 413
    assert answer.json()["error"] == (
        "the 3 images declare 108000000 pixels in all, more than 100000000 "
        "(SERVE_MAX_REQUEST_PIXELS); split the upload"
    )


def test_the_pool_takes_each_waiting_caller_in_turn() -> None:
    pool = FairPool(1, "test")
    started = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def job(name: str, hold: bool = False) -> str:
        order.append(name)
        if hold:
            started.set()
            release.wait(30)
        return name

    try:
        first = pool.submit_all(
            [lambda: job("a1", hold=True)] + [lambda n=n: job(f"a{n}") for n in (2, 3, 4)]
        )
        assert started.wait(30)  # a1 runs, a2.. wait, and b arrives behind them
        second = pool.submit_all([lambda: job("b1"), lambda: job("b2")])
        release.set()
        assert [f.result(30) for f in first + second] == ["a1", "a2", "a3", "a4", "b1", "b2"]
    finally:
        pool.close()
    # Round robin: b waits for one more of a's jobs (a's turn had come), not for all of them.
    assert order == ["a1", "a2", "b1", "a3", "b2", "a4"]


def test_the_pool_never_runs_a_job_cancelled_while_it_waited() -> None:
    pool = FairPool(1, "test")
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def hold() -> None:
        started.set()
        release.wait(30)

    try:
        (holding,) = pool.submit_all([hold])
        assert started.wait(30)
        waiting: list[Future] = pool.submit_all([lambda: ran.append(1), lambda: ran.append(2)])
        assert waiting[0].cancel()
        release.set()
        holding.result(30)
        waiting[1].result(30)
    finally:
        pool.close()
    assert ran == [2]


@pytest.fixture(scope="module")
def impatient(test_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """A server whose requests have half a second, and a request pixel budget that lets many
    large images through to the decoders."""
    log = tmp_path_factory.mktemp("impatient") / "server.log"
    server = start_server(
        test_repo, log, request_timeout_s="0.5", max_request_pixels=str(2_000_000_000)
    )
    yield server
    server.stop()


def large_webp() -> bytes:
    """A few kilobytes that decode to 49 million pixels (lossless WebP of one colour)."""
    buffer = io.BytesIO()
    Image.new("L", (7000, 7000), 255).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def test_decoding_counts_in_the_request_timeout(impatient: Server) -> None:
    data = large_webp()
    files = [("file", (f"{i}.webp", data, "image/webp")) for i in range(40)]
    with impatient.client() as http:
        answer = http.post("/v1/models/mnist:predict-image", files=files)
        assert answer.status_code == 504
        assert (
            "took longer than the request timeout (SERVE_REQUEST_TIMEOUT_S)"
            in (answer.json()["error"])
        )
        # What was still queued was dropped: once the decodes that were running end, a small
        # upload is served again (a white square on black: no digit, 422; not 504).
        small = io.BytesIO()
        Image.new("L", (28, 28)).save(small, "PNG")
        files = {"file": ("small.png", small.getvalue(), "image/png")}
        wait_until(
            lambda: http.post("/v1/models/mnist:predict-image", files=files).status_code != 504,
            "a small upload served after the timed-out one",
            timeout_s=60,
        )
        assert http.post("/v1/models/mnist:predict-image", files=files).status_code == 422


# ---- HTTP details -------------------------------------------------------------------------------

IRIS_JSON = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(IRIS_JSON)),
        ("deflate", zlib.compress(IRIS_JSON)),
        ("deflate", zlib.compress(IRIS_JSON, wbits=-zlib.MAX_WBITS)),
        ("identity", IRIS_JSON),
    ],
    ids=["gzip", "zlib deflate", "raw deflate", "identity"],
)
def test_compressed_bodies_are_inflated(http: httpx.Client, encoding: str, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    answer = http.post("/v1/models/iris:predict", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["class_name"] == "setosa"


@pytest.mark.parametrize(
    ("encoding", "body", "status", "says"),
    [
        ("gzip", gzip.compress(b" " * (17 << 20)), 413, "the decompressed request body is larger"),
        ("gzip", IRIS_JSON, 400, "not valid gzip data"),
        ("gzip", gzip.compress(IRIS_JSON)[:-12], 400, "truncated"),
        ("br", IRIS_JSON, 415, "Content-Encoding 'br' is not supported"),
    ],
    ids=["bomb", "not gzip", "truncated", "brotli"],
)
def test_bad_compressed_bodies(
    http: httpx.Client, encoding: str, body: bytes, status: int, says: str
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    answer = http.post("/v2/models/iris/infer", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


def test_a_declared_length_above_the_limit_is_refused_before_the_body(server: Server) -> None:
    """No `100 Continue`, no reading: the 413 comes from the headers alone."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 20000000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"SERVE_MAX_BODY_BYTES" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"100 Continue" not in answer
    assert b"SERVE_MAX_BODY_BYTES" in answer


@pytest.mark.parametrize("path", ["/v2/health/ready", "/v2/health/live", "/v1/models", "/metrics"])
def test_head_is_answered_where_get_is(http: httpx.Client, path: str) -> None:
    get, head = http.get(path), http.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
