"""`:predict-image` end to end: real files, decoded by Pillow in a real server."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.conftest import ROOT
from tests.service.conftest import UPLOAD_TYPES, start_server, wait_ready
from training.fonts import font_dir

UPLOADS = ROOT / "tests" / "fixtures" / "uploads"
MANIFEST: list[dict] = json.loads((UPLOADS / "manifest.json").read_text())
PREDICT = "/v1/models/mnist:predict-image"


def upload(name: str) -> tuple[str, bytes, str]:
    media = "image/png" if name.endswith(".png") else "image/jpeg"
    return name, (UPLOADS / name).read_bytes(), media


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def seven() -> Image.Image:
    """A black-on-white 7 drawn with Pillow: a bar and a diagonal."""
    image = Image.new("L", (160, 200), 255)
    pixels = np.asarray(image).copy()
    pixels[30:48, 30:130] = 0
    for row in range(48, 180):
        col = 130 - (row - 48) * 70 // 132
        pixels[row, col - 9 : col + 9] = 0
    return Image.fromarray(pixels)


def png_with_size(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height, with almost no pixel data (a bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    data = zlib.compress(b"\0" * 64)
    idat = (
        struct.pack(">I", len(data))
        + b"IDAT"
        + data
        + struct.pack(">I", zlib.crc32(b"IDAT" + data))
    )
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat


def post_files(
    http: httpx.Client, files: list[tuple[str, bytes, str]], url: str = PREDICT
) -> httpx.Response:
    return http.post(url, files=[("file", f) for f in files])


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def test_multipart_batch_answers_in_upload_order(http: httpx.Client) -> None:
    chosen = [entry for entry in MANIFEST if entry["style"] == "scan"][:12]
    response = post_files(http, [upload(entry["file"]) for entry in chosen])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "mnist"
    predictions = body["predictions"]
    assert [p["filename"] for p in predictions] == [entry["file"] for entry in chosen]
    assert [p["label"] for p in predictions] == [entry["label"] for entry in chosen]
    for prediction in predictions:
        assert prediction["class_name"] == str(prediction["label"])
        assert len(prediction["probabilities"]) == 10
        assert sum(prediction["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert "input_png" not in prediction


@pytest.mark.parametrize("fmt", UPLOAD_TYPES)
def test_raw_body_of_each_accepted_type(http: httpx.Client, fmt: str) -> None:
    image = seven().convert("RGB") if fmt == "JPEG" else seven()
    response = http.post(
        PREDICT, content=encode(image, fmt), headers={"content-type": UPLOAD_TYPES[fmt]}
    )
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["filename"] is None
    assert prediction["label"] == 7


def test_explicit_version(http: httpx.Client) -> None:
    response = post_files(
        http, [upload("scan_000.jpg")], "/v1/models/mnist/versions/1:predict-image"
    )
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "1"


def test_return_input_shows_the_28x28_the_model_saw(http: httpx.Client) -> None:
    response = http.post(
        PREDICT,
        params={"return_input": "true"},
        content=encode(seven()),
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 200, response.text
    encoded = response.json()["predictions"][0]["input_png"]
    assert not encoded.startswith("data:")
    seen = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert (seen.format, seen.size, seen.mode) == ("PNG", (28, 28), "L")
    pixels = np.asarray(seen, dtype=np.float64)
    assert pixels[0].max() == 0
    assert pixels[:, 0].max() == 0
    rows, cols = np.indices(pixels.shape)
    centre = ((rows * pixels).sum() / pixels.sum(), (cols * pixels).sum() / pixels.sum())
    assert centre == pytest.approx((13.5, 13.5), abs=1.0)


def test_images_join_the_batcher_counters(http: httpx.Client) -> None:
    def rows_inferred() -> int:
        stats = http.get("/v1/models/mnist").json()["stats"]
        return sum(version["rows_inferred"] for version in stats.values())

    before = rows_inferred()
    files = [upload(entry["file"]) for entry in MANIFEST[:5]]
    assert post_files(http, files).status_code == 200
    assert rows_inferred() - before == 5


def test_one_bad_file_fails_the_request_and_is_named(http: httpx.Client) -> None:
    files = [upload("scan_000.jpg"), ("notes.txt", b"not a picture", "text/plain")]
    message = error_of(post_files(http, files), 415)
    assert "'notes.txt'" in message


@pytest.mark.parametrize(
    ("name", "data", "status", "says"),
    [
        ("empty.png", b"", 415, "empty"),
        ("text.png", b"hello, world", 415, "not a readable image"),
        ("truncated.png", encode(seven())[:300], 422, "truncated"),
        (
            "blank.png",
            encode(Image.new("L", (200, 200), 255)),
            422,
            "no digit found in 'blank.png'",
        ),
        ("big.png", png_with_size(8000, 8000), 413, "SERVE_MAX_IMAGE_PIXELS"),
        ("bomb.png", png_with_size(100_000, 100_000), 413, "SERVE_MAX_IMAGE_PIXELS"),
    ],
)
def test_unusable_files(http: httpx.Client, name: str, data: bytes, status: int, says: str) -> None:
    message = error_of(post_files(http, [(name, data, "image/png")]), status)
    assert name in message
    assert says in message
    assert http.get("/v2/health/ready").status_code == 200


def test_too_many_files(http: httpx.Client) -> None:
    tiny = encode(seven().resize((28, 28)))
    files = [(f"{i}.png", tiny, "image/png") for i in range(65)]
    assert "SERVE_MAX_FILES_PER_REQUEST" in error_of(post_files(http, files), 413)


@pytest.mark.parametrize(
    ("kwargs", "status", "says"),
    [
        ({"json": {"instances": [[0.0] * 784]}}, 415, ":predict"),
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"files": [("other", ("a.png", b"x", "image/png"))]}, 422, "'file'"),
        ({"data": {"file": "just text"}, "files": [("x", ("a", b"", "image/png"))]}, 422, "text"),
    ],
)
def test_wrong_request_shapes(http: httpx.Client, kwargs: dict, status: int, says: str) -> None:
    assert says in error_of(http.post(PREDICT, **kwargs), status)


def test_far_too_many_parts_stop_the_parser(http: httpx.Client) -> None:
    files = [(f"{i}.png", b"x", "image/png") for i in range(200)]  # beyond the files limit + 16
    assert "more than 80 files" in error_of(post_files(http, files), 413)


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (
            b"--b\r\nContent-Disposition: form-data; name=",
            "multipart/form-data; boundary=b",
            "malformed",
        ),
        (b"--b--\r\n", "multipart/form-data", "boundary"),
    ],
)
def test_broken_multipart_is_a_400(
    http: httpx.Client, body: bytes, content_type: str, says: str
) -> None:
    response = http.post(PREDICT, content=body, headers={"content-type": content_type})
    assert says in error_of(response, 400)


def test_return_input_must_be_a_boolean(http: httpx.Client) -> None:
    response = post_files(http, [upload("scan_000.jpg")], PREDICT + "?return_input=maybe")
    assert "return_input" in error_of(response, 400)


def test_feature_model_points_to_predict(http: httpx.Client) -> None:
    response = post_files(http, [upload("scan_000.jpg")], "/v1/models/iris:predict-image")
    assert "/v1/models/iris:predict" in error_of(response, 422)


def test_images_sent_to_predict_point_to_predict_image(http: httpx.Client) -> None:
    response = post_files(http, [upload("scan_000.jpg")], "/v1/models/mnist:predict")
    assert ":predict-image" in error_of(response, 415)


def test_accuracy_on_the_committed_uploads_through_http(http: httpx.Client) -> None:
    """Every committed upload, 30 per style, through the endpoint in batches of 30."""
    correct: Counter[str] = Counter()
    for style in sorted({entry["style"] for entry in MANIFEST}):
        entries = [entry for entry in MANIFEST if entry["style"] == style]
        response = post_files(http, [upload(entry["file"]) for entry in entries])
        assert response.status_code == 200, response.text
        for entry, prediction in zip(entries, response.json()["predictions"], strict=True):
            correct[style] += prediction["label"] == entry["label"]
    assert sum(correct.values()) / len(MANIFEST) >= 0.95, correct
    assert min(correct.values()) >= 27, correct  # >= 90% on every style


def printed_on_paper(text: str) -> bytes:
    """`text` in dark ink on white, as a phone might photograph a page (JPEG)."""
    image = Image.new("L", (420, 220), 235)
    font = ImageFont.truetype(str(font_dir() / "DejaVuSerif.ttf"), 110)
    ImageDraw.Draw(image).text((30, 40), text, fill=40, font=font)
    return encode(image.convert("RGB"), "JPEG")


def test_pictures_of_no_digit_are_flagged_and_still_answered(http: httpx.Client) -> None:
    """A word and a number of four digits are flagged; the committed digits are not; each
    answer keeps its probabilities and its digit_score is its top probability."""
    others = [("cat.jpg", printed_on_paper("cat"), "image/jpeg")]
    others.append(("year.jpg", printed_on_paper("2024"), "image/jpeg"))
    digits = [upload(entry["file"]) for entry in MANIFEST if entry["style"] == "scan"][:10]
    response = post_files(http, others + digits)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    for prediction in predictions:
        assert prediction["digit_score"] == max(prediction["probabilities"])
        assert len(prediction["probabilities"]) == 10
    assert [p["not_a_digit"] for p in predictions[:2]] == [True, True]
    assert [p["not_a_digit"] for p in predictions[2:]] == [False] * 10


def test_the_threshold_is_the_servers_setting(test_repo: Path, tmp_path: Path) -> None:
    """With SERVE_NOT_A_DIGIT_BELOW=0 nothing is flagged: the word gets its digit unflagged."""
    server = start_server(test_repo, tmp_path / "server.log", not_a_digit_below="0")
    try:
        with server.client() as client:
            wait_ready(client)
            response = post_files(client, [("cat.jpg", printed_on_paper("cat"), "image/jpeg")])
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["not_a_digit"] is False
    assert prediction["digit_score"] < 0.6  # the default threshold would have flagged it


def test_body_limit_applies_to_uploads(http: httpx.Client) -> None:
    too_big = b"\x89PNG" + bytes(16 * 1024 * 1024)  # SERVE_MAX_BODY_BYTES defaults to 16 MiB
    for kwargs in (
        {"content": too_big, "headers": {"content-type": "image/png"}},
        {"files": [("file", ("big.png", too_big, "image/png"))]},
    ):
        assert "SERVE_MAX_BODY_BYTES" in error_of(http.post(PREDICT, **kwargs), 413)


def test_openapi_documents_the_uploads(http: httpx.Client) -> None:
    operation = http.get("/schema/openapi.json").json()["paths"]["/v1/models/{target}"]["post"]
    content = operation["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["required"] == ["file"]
    assert set(UPLOAD_TYPES.values()) <= set(content)
    assert "return_input" in [parameter["name"] for parameter in operation["parameters"]]
    answers = operation["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    assert {"$ref": "#/components/schemas/V1ImageResponse"} in answers
