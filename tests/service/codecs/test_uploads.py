"""The upload codec on its own: content types, multipart bodies, the pixel and time budgets, the
errors that name the file, and the answer; real images decoded by Pillow, no server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from modelrepo.card import ModelCard
from service.codecs import uploads
from service.codecs.uploads import ACCEPTED, ImagePreparer, Upload
from service.errors import (
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    TimedOut,
    UnsupportedMediaType,
)
from tests.conftest import MODELS_DIR, ROOT

BOUNDARY = "digits"
SEVEN = (ROOT / "samples" / "seven.png").read_bytes()


def card(name: str, version: int = 1) -> ModelCard:
    path = MODELS_DIR / name / str(version) / "card.json"
    return ModelCard.model_validate_json(path.read_text())


MNIST = card("mnist")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body of (field, filename or None for a text field, content)."""
    body = b""
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def prepare(
    files: list[Upload],
    with_png: bool = False,
    max_pixels: int = 10**7,
    max_request_pixels: int = 10**8,
    timeout_s: float = 30,
    workers: int = 2,
) -> list[uploads.PreparedImage]:
    preparer = ImagePreparer(workers, max_pixels, max_request_pixels)
    try:
        return asyncio.run(preparer.prepare(files, with_png=with_png, timeout_s=timeout_s))
    finally:
        preparer.close()


# --- which models take images ------------------------------------------------------------------


def test_a_28x28_image_model_takes_uploads() -> None:
    uploads.check_image_model(MNIST)


def test_a_feature_model_points_to_its_predict_route() -> None:
    with pytest.raises(InvalidInput) as caught:
        uploads.check_image_model(card("iris"))
    assert str(caught.value) == (
        "model 'iris' takes feature vectors, not images; POST JSON to /v1/models/iris:predict"
    )


def test_an_image_model_of_another_size_is_told_to_send_features() -> None:
    document = MNIST.model_dump()
    document["input"]["shape"] = [-1, 32 * 28]
    document["input"]["image"]["height"] = 32
    tall = ModelCard.model_validate(document)
    with pytest.raises(InvalidInput) as caught:
        uploads.check_image_model(tall)
    assert str(caught.value) == (
        "uploads are prepared as 28x28 digits; model 'mnist' expects 32x28: send feature vectors"
    )
    document["input"]["shape"] = [-1, 28 * 32]
    document["input"]["image"].update(height=28, width=32)
    with pytest.raises(InvalidInput, match="expects 28x32"):
        uploads.check_image_model(ModelCard.model_validate(document))


# --- content types ------------------------------------------------------------------------------


@pytest.mark.parametrize("media", sorted(uploads.IMAGE_TYPES))
def test_every_image_type_is_one_raw_body(media: str) -> None:
    assert uploads.upload_boundary(f" {media.upper()} ; charset=x") is None


def test_the_media_type_is_what_comes_before_the_first_parameter() -> None:
    assert uploads.upload_boundary("image/png; name=a; size=3") is None
    assert uploads.upload_boundary("multipart/form-data; charset=x; boundary=b") == "b"


def test_the_boundary_of_a_form_is_read_quoted_or_not() -> None:
    assert uploads.upload_boundary('Multipart/Form-Data; boundary="a b"') == "a b"
    assert uploads.upload_boundary("multipart/form-data;boundary=xyz") == "xyz"


@pytest.mark.parametrize(
    ("content_type", "says"),
    [
        (None, f"content type 'none' is not an image upload; send {ACCEPTED}"),
        ("", f"content type 'none' is not an image upload; send {ACCEPTED}"),
        ("text/plain", f"content type 'text/plain' is not an image upload; send {ACCEPTED}"),
        (
            "Application/JSON; charset=utf-8",
            f"content type 'application/json' is not an image upload; send {ACCEPTED}"
            " (feature vectors go to :predict)",
        ),
        ("image/svg+xml", f"content type 'image/svg+xml' is not an image upload; send {ACCEPTED}"),
    ],
)
def test_other_content_is_415_with_what_to_send(content_type: str | None, says: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        uploads.upload_boundary(content_type)
    assert str(caught.value) == says


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
def test_a_form_without_a_boundary_is_malformed(content_type: str) -> None:
    with pytest.raises(MalformedRequest) as caught:
        uploads.upload_boundary(content_type)
    assert str(caught.value) == "multipart/form-data without a boundary parameter"


# --- the files of a body ------------------------------------------------------------------------


def test_a_raw_body_is_one_upload_without_a_name() -> None:
    (upload,) = uploads.split_uploads(SEVEN, None, max_files=1)
    assert upload == Upload(None, SEVEN)
    assert upload.described == "the request body"
    assert Upload("a.png", b"").described == "'a.png'"


def test_the_files_of_a_form_in_upload_order_other_fields_skipped() -> None:
    body = form(
        ("file", "b.png", b"second\r\nline"),
        ("note", None, b"ignored"),
        ("picture", "other.png", b"not the file field"),
        ("file", "a.png", b"first"),
    )
    assert uploads.split_uploads(body, BOUNDARY, max_files=2) == [
        Upload("b.png", b"second\r\nline"),
        Upload("a.png", b"first"),
    ]


def test_a_text_value_in_the_file_field_is_named_by_its_place() -> None:
    body = form(("file", "a.png", b"x"), ("file", None, b"text"))
    with pytest.raises(InvalidInput) as caught:
        uploads.split_uploads(body, BOUNDARY, max_files=5)
    assert str(caught.value) == "multipart field 'file' number 2 is text, not a file"


def test_a_form_without_files_says_what_to_send() -> None:
    with pytest.raises(InvalidInput) as caught:
        uploads.split_uploads(form(("note", None, b"x")), BOUNDARY, max_files=5)
    assert str(caught.value) == f"no files in the multipart field 'file'; send {ACCEPTED}"


def test_more_files_than_the_limit_is_413_with_the_count() -> None:
    body = form(*[("file", f"{i}.png", b"x") for i in range(4)])
    assert len(uploads.split_uploads(body, BOUNDARY, max_files=4)) == 4
    with pytest.raises(PayloadTooLarge) as caught:
        uploads.split_uploads(body, BOUNDARY, max_files=3)
    assert str(caught.value) == (
        "4 files in one request; the limit is 3 (SERVE_MAX_FILES_PER_REQUEST), split the upload"
    )


def test_parts_are_counted_up_to_the_files_plus_sixteen() -> None:
    assert uploads.max_parts(3) == 19
    at_limit = form(*[("file", f"{i}.png", b"x") for i in range(19)])
    with pytest.raises(PayloadTooLarge, match=r"^19 files in one request; the limit is 3 "):
        uploads.split_uploads(at_limit, BOUNDARY, max_files=3)
    over = form(*[("file", f"{i}.png", b"x") for i in range(20)])
    with pytest.raises(PayloadTooLarge) as caught:
        uploads.split_uploads(over, BOUNDARY, max_files=3)
    assert str(caught.value).startswith("more than 19 files in one request; the limit is 3 ")


@pytest.mark.parametrize(
    "body",
    [
        b"no boundary anywhere",
        form(("file", "a.png", b"x"))[:-12],  # cut before the closing boundary
        b"--digits\r\nno header here\r\n\r\nx\r\n--digits--\r\n",
        form(("file", "a.png", b"x")).replace(b"--digits--", b"--digitsXX"),
    ],
)
def test_a_broken_form_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest) as caught:
        uploads.split_uploads(body, BOUNDARY, max_files=5)
    assert str(caught.value).startswith("the multipart/form-data body is malformed: ")


# --- preparing: rows, budgets, the file named in every error ---------------------------------


def test_each_upload_becomes_its_row_and_optionally_its_png() -> None:
    files = [Upload("seven.png", SEVEN), Upload("copy.png", SEVEN)]
    with_png = prepare(files, with_png=True)
    assert [image.row.shape for image in with_png] == [(784,), (784,)]
    assert with_png[0].row.dtype == np.float32
    shown = Image.open(io.BytesIO(base64.b64decode(with_png[0].input_png or "")))
    assert shown.size == (28, 28)
    np.testing.assert_array_equal(
        np.asarray(shown), np.rint(with_png[0].row.reshape(28, 28) * 255).astype(np.uint8)
    )
    without = prepare(files[:1])
    assert without[0].input_png is None
    np.testing.assert_array_equal(without[0].row, with_png[0].row)


def png_of_size(width: int, height: int) -> bytes:
    """A real PNG of that size: a dark bar on white, a '1'."""
    pixels = np.full((height, width), 255, np.uint8)
    pixels[height // 5 : height * 4 // 5, width // 2 - 2 : width // 2 + 2] = 0
    return png(Image.fromarray(pixels))


def test_the_request_pixel_budget_is_read_from_the_headers() -> None:
    files = [Upload("a.png", png_of_size(100, 100)), Upload("b.png", png_of_size(100, 50))]
    assert len(prepare(files, max_request_pixels=15_000)) == 2
    with pytest.raises(PayloadTooLarge) as caught:
        prepare(files, max_request_pixels=14_999)
    assert str(caught.value) == (
        "the 2 images declare 15000 pixels in all, more than 14999 "
        "(SERVE_MAX_REQUEST_PIXELS); split the upload"
    )


def test_a_second_file_that_is_not_an_image_is_named_before_any_decode() -> None:
    files = [Upload("a.png", png_of_size(60, 60)), Upload("notes.txt", b"hello")]
    with pytest.raises(UnsupportedMediaType) as caught:
        prepare(files)
    assert str(caught.value) == (
        f"'notes.txt': not a readable image (PNG, JPEG, WebP, BMP, GIF or TIFF); send {ACCEPTED}"
    )


@pytest.mark.parametrize(
    ("max_pixels", "max_request_pixels"), [(3_599, 10**6), (10**6, 3_599), (3_599, 3_599)]
)
def test_one_file_is_held_to_the_smaller_budget(max_pixels: int, max_request_pixels: int) -> None:
    files = [Upload("big.png", png_of_size(60, 60))]
    assert len(prepare(files, max_pixels=3_600, max_request_pixels=3_600)) == 1
    with pytest.raises(PayloadTooLarge) as caught:
        prepare(files, max_pixels=max_pixels, max_request_pixels=max_request_pixels)
    assert str(caught.value) == (
        "'big.png' is too large: 60x60 pixels is more than 3599 "
        "(SERVE_MAX_IMAGE_PIXELS, SERVE_MAX_REQUEST_PIXELS)"
    )


def test_each_file_is_held_to_the_image_budget_in_a_batch() -> None:
    files = [Upload("a.png", png_of_size(60, 60)), Upload("b.png", png_of_size(61, 60))]
    with pytest.raises(PayloadTooLarge, match=r"^'b\.png' is too large: 61x60 pixels is more"):
        prepare(files, max_pixels=3_600)


@pytest.mark.parametrize(
    ("data", "error", "says"),
    [
        (
            png(Image.new("L", (50, 50), 255)),
            InvalidInput,
            "no digit found in 'x.png': the image has no visible ink",
        ),
        (b"", UnsupportedMediaType, f"'x.png': the file is empty; send {ACCEPTED}"),
        (
            png_of_size(60, 60)[:60],
            InvalidInput,
            "'x.png' cannot be used: the image data is truncated or corrupt (",
        ),
    ],
)
def test_an_unusable_file_is_named_in_its_error(
    data: bytes, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as caught:
        prepare([Upload("x.png", data)])
    assert str(caught.value).startswith(says)


def test_the_first_bad_file_in_upload_order_fails_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second file fails first (its decode is let through while the first one's waits for
    it), yet the error is the first file's."""
    blank, cut = png(Image.new("L", (50, 50), 255)), png_of_size(60, 60)[:60]
    second_failed = threading.Event()
    decode = uploads.images.decode

    def in_turn(data: bytes, max_pixels: int) -> Image.Image:
        if data == blank:
            assert second_failed.wait(30)
            return decode(data, max_pixels)
        try:
            return decode(data, max_pixels)
        finally:
            second_failed.set()

    monkeypatch.setattr(uploads.images, "decode", in_turn)
    files = [Upload("first.png", blank), Upload("second.png", cut)]
    with pytest.raises(InvalidInput) as caught:
        prepare(files, workers=2)
    assert str(caught.value) == "no digit found in 'first.png': the image has no visible ink"


def test_a_decoder_surprise_is_a_400_naming_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def surprise(data: bytes, max_pixels: int) -> Image.Image:
        raise ZeroDivisionError("inside a plugin")

    monkeypatch.setattr(uploads.images, "decode", surprise)
    with pytest.raises(InvalidInput) as caught:
        prepare([Upload(None, SEVEN)])
    assert str(caught.value) == "the request body cannot be decoded: ZeroDivisionError"


def test_a_row_with_non_finite_values_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    preprocess = uploads.images.preprocess_digit

    def one_nan(image: Image.Image, *full_size: object) -> np.ndarray:
        digit = preprocess(image, *full_size)  # type: ignore[arg-type]
        digit[0, 0] = np.nan
        return digit

    monkeypatch.setattr(uploads.images, "preprocess_digit", one_nan)
    with pytest.raises(InvalidInput) as caught:
        prepare([Upload("nan.png", SEVEN)])
    assert str(caught.value) == (
        "'nan.png' cannot be used: its pixel values are not finite numbers"
    )


def test_what_is_still_queued_when_the_time_runs_out_never_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker, held by the first file's decode while the request's deadline is brought
    forward to now: a 504-worthy TimedOut, and the second file, still queued, never decoded."""
    release, started = threading.Event(), threading.Event()
    decoded: list[bytes] = []
    decode = uploads.images.decode

    def held(data: bytes, max_pixels: int) -> Image.Image:
        decoded.append(data)
        started.set()
        release.wait(30)
        return decode(data, max_pixels)

    deadlines: list[asyncio.Timeout] = []
    timeout_at = asyncio.timeout_at

    def recorded(when: float) -> asyncio.Timeout:
        deadlines.append(timeout_at(when))
        return deadlines[-1]

    monkeypatch.setattr(uploads.images, "decode", held)
    monkeypatch.setattr(uploads.asyncio, "timeout_at", recorded)
    preparer = ImagePreparer(1, 10**7, 10**8)
    files = [Upload("a.png", SEVEN), Upload("b.png", SEVEN + b"\0")]

    async def run() -> None:
        task = asyncio.create_task(preparer.prepare(files, with_png=False, timeout_s=3600))
        decoding = asyncio.create_task(asyncio.to_thread(started.wait, 30))
        try:
            await asyncio.wait([task, decoding], return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                deadlines[-1].reschedule(asyncio.get_running_loop().time())
            await task
        finally:
            started.set()  # a prepare that failed before decoding: stop waiting

    try:
        with pytest.raises(TimedOut) as caught:
            asyncio.run(run())
        release.set()
        (after,) = preparer._pool.submit_all([lambda: "after"])  # queued behind file two
        assert after.result(30) == "after"
    finally:
        release.set()
        preparer.close()
    assert str(caught.value) == (
        "decoding the uploads took longer than the request timeout "
        "(SERVE_REQUEST_TIMEOUT_S); send fewer or smaller images"
    )
    assert decoded == [SEVEN]


@pytest.mark.parametrize("files", [1, 2], ids=["decoding one file", "reading two headers"])
def test_a_request_out_of_time_is_timed_out(monkeypatch: pytest.MonkeyPatch, files: int) -> None:
    """With no time left, the request is TimedOut while its first job is still held: one file
    is decoded at once, two have their headers read first."""
    release = threading.Event()
    step = "decode" if files == 1 else "declared_size"
    real = getattr(uploads.images, step)

    def held(data: bytes, max_pixels: int) -> object:
        release.wait(30)
        return real(data, max_pixels)

    monkeypatch.setattr(uploads.images, step, held)
    preparer = ImagePreparer(2, 10**7, 10**8)
    try:
        with pytest.raises(TimedOut, match="SERVE_REQUEST_TIMEOUT_S"):
            asyncio.run(preparer.prepare([Upload("a.png", SEVEN)] * files, False, timeout_s=0))
    finally:
        release.set()
        preparer.close()


# --- rows and the answer ------------------------------------------------------------------------


def test_png_of_a_digit_is_its_grey_levels_rounded_and_clipped() -> None:
    digit = np.array([[0.0, 0.5, 1.0], [-0.2, 1.3, 0.998]], np.float32)
    shown = Image.open(io.BytesIO(base64.b64decode(uploads.encode_png(digit))))
    assert shown.mode == "L"
    assert np.asarray(shown).tolist() == [[0, 128, 255], [0, 255, 254]]


def test_rows_are_stacked_in_upload_order() -> None:
    prepared = [uploads.PreparedImage(np.full(784, i, np.float32), None) for i in range(3)]
    assert uploads.stack_rows(prepared[:1]).shape == (1, 784)
    assert uploads.stack_rows(prepared[:2])[:, 0].tolist() == [0, 1]
    stacked = uploads.stack_rows(prepared)
    assert stacked.shape == (3, 784)
    assert stacked[:, 0].tolist() == [0, 1, 2]


def test_the_answer_names_each_prediction_by_its_file() -> None:
    files = [Upload("a.png", b""), Upload(None, b"")]
    prepared = [
        uploads.PreparedImage(np.zeros(784, np.float32), "UE5H"),
        uploads.PreparedImage(np.zeros(784, np.float32), None),
    ]
    outputs = np.zeros((2, 10), np.float32)
    outputs[0, 7], outputs[1, 2] = 0.9, 0.8
    answer = json.loads(uploads.encode_answer(MNIST, files, prepared, outputs, 0.85).body)
    assert answer["model_name"] == "mnist"
    assert answer["model_version"] == "1"
    first, second = answer["predictions"]
    assert first["filename"] == "a.png"
    assert (first["label"], first["class_name"], first["input_png"]) == (7, "7", "UE5H")
    assert first["probabilities"] == pytest.approx(outputs[0].tolist())
    assert second["filename"] is None
    assert (second["label"], second["class_name"]) == (2, "2")
    assert "input_png" not in second
    assert (first["digit_score"], first["not_a_digit"]) == (pytest.approx(0.9), False)
    assert (second["digit_score"], second["not_a_digit"]) == (pytest.approx(0.8), True)
    with pytest.raises(ValueError, match="zip"):
        uploads.encode_answer(MNIST, files[:1], prepared, outputs, 0.85)


@pytest.mark.parametrize(("below", "flagged"), [(0.5, False), (0.5000001, True), (0.0, False)])
def test_a_prediction_is_flagged_when_its_top_probability_is_below_the_threshold(
    below: float, flagged: bool
) -> None:
    outputs = np.zeros((1, 10), np.float32)
    outputs[0, 3], outputs[0, 4] = 0.5, 0.5
    prepared = [uploads.PreparedImage(np.zeros(784, np.float32), None)]
    answer = json.loads(
        uploads.encode_answer(MNIST, [Upload("x.png", b"")], prepared, outputs, below).body
    )
    (prediction,) = answer["predictions"]
    assert prediction["digit_score"] == 0.5
    assert prediction["not_a_digit"] is flagged
