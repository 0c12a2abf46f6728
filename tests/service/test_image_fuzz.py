"""Broken image files at `:predict-image`: every answer is a 200 or a 4xx JSON error, never a 5xx.

A real digit (a committed upload) is encoded by Pillow in every accepted format, then cut at
many offsets, cut to its header, corrupted by seeded random byte flips and sent under the wrong
content type, each as a raw body and as a multipart upload. Each table is one test that sends
all its cases and reports every bad answer at once; the server must still be ready afterwards.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.service.conftest import UPLOAD_TYPES

PREDICT = "/v1/models/mnist:predict-image"
FLIPS = [1, 4, 32]  # bytes flipped per corrupted copy
FLIP_SEEDS = range(4)
TRUNCATIONS = 10  # offsets per file, from the first byte to the last
SEEN: Counter[str] = Counter()  # answers by status, printed at the end


def digit_image() -> Image.Image:
    """A scanned digit from the committed uploads, small enough to keep each request cheap."""
    image = Image.open(ROOT / "tests" / "fixtures" / "uploads" / "scan_000.jpg").convert("L")
    image.thumbnail((96, 96))
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


ENCODED = {fmt: encode(digit_image(), fmt) for fmt in UPLOAD_TYPES}


def header_length(data: bytes) -> int:
    """Where the pixel data starts: Pillow's first tile offset, JPEG's start of scan, or the
    fixed RIFF + VP8 frame header of a WebP."""
    image = Image.open(io.BytesIO(data))
    if image.format == "JPEG":
        return data.index(b"\xff\xda")
    if image.format == "WEBP":
        return 30
    return image.tile[0].offset


def truncation_offsets(size: int) -> list[int]:
    """Evenly spread cut points plus the first few bytes, every one short of the whole file."""
    spread = np.linspace(0, size - 1, TRUNCATIONS, dtype=int).tolist()
    return sorted(set(spread) | {1, 2, 4, 8, 16} - {size})


def flipped(data: bytes, flips: int, seed: int) -> bytes:
    """`flips` random bytes XORed with random non-zero values (seeded: the same every run)."""
    rng = np.random.default_rng(seed)
    corrupted = np.frombuffer(data, dtype=np.uint8).copy()
    positions = rng.choice(len(corrupted), size=flips, replace=False)
    corrupted[positions] ^= rng.integers(1, 256, size=flips, dtype=np.uint8)
    return corrupted.tobytes()


def send(http: httpx.Client, data: bytes, media: str, multipart: bool) -> httpx.Response:
    if multipart:
        return http.post(PREDICT, files=[("file", ("upload", data, media))])
    return http.post(PREDICT, content=data, headers={"content-type": media})


def problem(response: httpx.Response) -> str | None:
    """What is wrong with an answer to a (possibly broken) upload, or None when it is fine."""
    status = response.status_code
    SEEN[str(status)] += 1
    if "Traceback" in response.text:
        return f"{status} with a traceback: {response.text[:200]}"
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"{status} answered as {response.headers.get('content-type')!r}"
    body = response.json()
    if status == 200:
        [prediction] = body["predictions"]
        return None if prediction["label"] in range(10) else f"200 with {prediction}"
    if not 400 <= status < 500:
        return f"{status}: {response.text[:200]}"
    if list(body) != ["error"] or not isinstance(body["error"], str) or not body["error"]:
        return f"{status} without a JSON error: {response.text[:200]}"
    return None


def check_all(
    http: httpx.Client, cases: list[tuple[str, bytes, str]], multipart: bool
) -> dict[str, str]:
    """Send every (name, data, media type) case; the bad answers by case name."""
    bad = {}
    for name, data, media in cases:
        trouble = problem(send(http, data, media, multipart))
        if trouble is not None:
            bad[name] = trouble
    return bad


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    server_errors = sum(n for status, n in SEEN.items() if status.startswith("5"))
    print(f"\nimage fuzz: {sum(SEEN.values())} requests, {server_errors} 5xx, by status {SEEN}")


@pytest.fixture
def healthy(http: httpx.Client) -> Iterator[httpx.Client]:
    """The client, and after the test a ready server that still reads a good digit."""
    yield http
    assert http.get("/v2/health/ready").status_code == 200
    good = send(http, ENCODED["PNG"], "image/png", multipart=False)
    assert good.status_code == 200, good.text


TRANSPORTS = pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])


@TRANSPORTS
@pytest.mark.parametrize("fmt", UPLOAD_TYPES)
def test_truncated_files(healthy: httpx.Client, fmt: str, multipart: bool) -> None:
    data = ENCODED[fmt]
    cases = [
        (f"{fmt}[:{cut}]", data[:cut], UPLOAD_TYPES[fmt]) for cut in truncation_offsets(len(data))
    ]
    cases.append((f"{fmt} header only", data[: header_length(data)], UPLOAD_TYPES[fmt]))
    assert check_all(healthy, cases, multipart) == {}


@TRANSPORTS
@pytest.mark.parametrize("fmt", UPLOAD_TYPES)
def test_files_with_flipped_bytes(healthy: httpx.Client, fmt: str, multipart: bool) -> None:
    cases = [
        (f"{fmt} {flips} flips, seed {seed}", flipped(ENCODED[fmt], flips, seed), UPLOAD_TYPES[fmt])
        for flips in FLIPS
        for seed in FLIP_SEEDS
    ]
    assert len({data for _, data, _ in cases}) == len(cases)  # every copy differs
    assert check_all(healthy, cases, multipart) == {}


@TRANSPORTS
def test_image_types_swapped(healthy: httpx.Client, multipart: bool) -> None:
    """Each format labelled as the next one: decoding goes by the bytes, not the label, so
    each answers 200 with the label it gets under its own type."""
    names = list(UPLOAD_TYPES)
    wrong = {}
    for fmt, other in zip(names, names[1:] + names[:1], strict=True):
        labelled = send(healthy, ENCODED[fmt], UPLOAD_TYPES[fmt], multipart)
        swapped = send(healthy, ENCODED[fmt], UPLOAD_TYPES[other], multipart)
        assert problem(swapped) is None, swapped.text
        if swapped.status_code != 200 or swapped.json() != labelled.json():
            wrong[f"{fmt} as {UPLOAD_TYPES[other]}"] = f"{swapped.status_code}: {swapped.text}"
    assert wrong == {}


@pytest.mark.parametrize("media", ["text/plain", "application/octet-stream", "application/json"])
def test_raw_body_that_is_not_declared_an_image_is_415(healthy: httpx.Client, media: str) -> None:
    for fmt, data in ENCODED.items():
        response = send(healthy, data, media, multipart=False)
        assert problem(response) is None, fmt
        assert response.status_code == 415, f"{fmt} as {media}: {response.text}"


@pytest.mark.parametrize("media", ["text/plain", "application/octet-stream", "image/png"])
def test_multipart_part_label_does_not_matter(healthy: httpx.Client, media: str) -> None:
    """A part's own content type is the client's guess; good digits still answer 200, and a
    truncated one a 4xx, whatever it says."""
    for fmt, data in ENCODED.items():
        good = send(healthy, data, media, multipart=True)
        assert problem(good) is None, fmt
        assert good.status_code == 200, f"{fmt} labelled {media}: {good.text}"
        cut = send(healthy, data[: len(data) // 2], media, multipart=True)
        assert problem(cut) is None, fmt
        assert 400 <= cut.status_code < 500, f"half a {fmt} labelled {media}: {cut.text}"
