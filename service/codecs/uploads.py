"""Image uploads: a request's files out of its body, decoded and preprocessed off the event
loop, and the answer with one prediction per file.

A request carries one raw image body or a multipart form with one or more `file` fields. Each
file becomes one MNIST-style row in a thread pool (Pillow and numpy release the GIL for most of
the work); one bad file fails the whole request, named in the error.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
from multipart import (
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)
from PIL import Image

from modelrepo.card import ModelSpec
from service.codecs import images
from service.codecs.answer import Answer, json_answer
from service.codecs.decoding import client_errors
from service.codecs.kserve_v1 import class_predictions
from service.codecs.schemas import ClassPrediction, ImagePrediction, V1ImageResponse
from service.errors import (
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    ServeError,
    TimedOut,
    UnsupportedMediaType,
)
from service.fair_pool import FairPool

T = TypeVar("T")

FILE_FIELD = "file"
IMAGE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/bmp",
        "image/x-ms-bmp",
        "image/gif",
        "image/tiff",
    }
)
ACCEPTED = "multipart/form-data (field 'file') or a raw image/png, jpeg, webp, bmp, gif or tiff"


@dataclass(frozen=True)
class Upload:
    """One uploaded file; `filename` is None for a raw image body."""

    filename: str | None
    data: bytes

    @property
    def described(self) -> str:
        return repr(self.filename) if self.filename is not None else "the request body"


@dataclass(frozen=True)
class PreparedImage:
    """What the model sees for one upload: a (features,) row, and optionally it as a PNG."""

    row: np.ndarray
    input_png: str | None


def check_image_model(card: ModelSpec) -> None:
    """Images go only to models whose card declares a 28x28 image input."""
    image = card.input.image
    if image is None:
        raise InvalidInput(
            f"model {card.name!r} takes feature vectors, not images; "
            f"POST JSON to /v1/models/{card.name}:predict"
        )
    if (image.height, image.width) != (images.CANVAS, images.CANVAS):
        raise InvalidInput(
            f"uploads are prepared as {images.CANVAS}x{images.CANVAS} digits; model "
            f"{card.name!r} expects {image.height}x{image.width}: send feature vectors"
        )


def upload_boundary(content_type: str | None) -> str | None:
    """Checked before the body is read: None for one raw image body, the boundary of a
    multipart form; 415 for any other content."""
    value = content_type or ""
    media = value.split(";", 1)[0].strip().lower()
    if media in IMAGE_TYPES:
        return None
    if media != "multipart/form-data":
        raise UnsupportedMediaType(
            f"content type {media or 'none'!r} is not an image upload; send {ACCEPTED}"
            + (" (feature vectors go to :predict)" if media == "application/json" else "")
        )
    boundary = parse_options_header(value)[1].get("boundary")
    if not boundary:
        raise MalformedRequest("multipart/form-data without a boundary parameter")
    return boundary


@client_errors
def split_uploads(body: bytes, boundary: str | None, max_files: int) -> list[Upload]:
    """The request's images in upload order (`boundary` from `upload_boundary`)."""
    if boundary is None:
        return [Upload(None, body)]
    return file_parts(body, boundary, max_files)


def file_parts(body: bytes, boundary: str, max_files: int) -> list[Upload]:
    """The parts of field `file` of a multipart/form-data body, in order.

    Parsed with the `multipart` library that Litestar's `request.form()` uses, without the
    spooled temporary file Litestar makes of every part (a third of an upload's time in the
    handler); bodies are bounded by SERVE_MAX_BODY_BYTES before they get here.
    """
    uploads: list[Upload] = []
    segment: MultipartSegment | None = None
    data = bytearray()
    try:
        with PushMultipartParser(boundary, max_segment_count=max_parts(max_files)) as parser:
            for chunk in (body, b""):
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment, data = event, bytearray()
                    elif event:
                        data += event
                    elif segment is not None and segment.name == FILE_FIELD:
                        if not segment.filename:
                            raise InvalidInput(
                                f"multipart field {FILE_FIELD!r} number {len(uploads) + 1} "
                                "is text, not a file"
                            )
                        uploads.append(Upload(segment.filename, bytes(data)))
    except ParserLimitReached:
        limit = max_parts(max_files)
        raise PayloadTooLarge(too_many_files(f"more than {limit}", max_files)) from None
    except ParserError as error:
        raise MalformedRequest(f"the multipart/form-data body is malformed: {error}") from None
    if not uploads:
        raise InvalidInput(f"no files in the multipart field {FILE_FIELD!r}; send {ACCEPTED}")
    if len(uploads) > max_files:
        raise PayloadTooLarge(too_many_files(str(len(uploads)), max_files))
    return uploads


def max_parts(max_files: int) -> int:
    """Parts the parser reads before it stops: the files, plus room for a few text fields so
    that a request just over the file limit still gets the count in its 413."""
    return max_files + 16


def too_many_files(count: str, max_files: int) -> str:
    return (
        f"{count} files in one request; the limit is {max_files} "
        "(SERVE_MAX_FILES_PER_REQUEST), split the upload"
    )


class ImagePreparer:
    """Turns a request's uploads into model rows on a fair pool, within its budgets: pixels per
    image and per request (read from the files' headers before any pixel is decoded) and the
    request's time (what is still queued when it runs out, or when the client leaves, never
    runs)."""

    def __init__(self, workers: int, max_pixels: int, max_request_pixels: int) -> None:
        self.max_pixels = max_pixels
        self.max_request_pixels = max_request_pixels
        self._pool = FairPool(workers, "image")

    async def prepare(
        self, uploads: list[Upload], with_png: bool, timeout_s: float
    ) -> list[PreparedImage]:
        """Rows in upload order; the first bad file (in upload order) fails the request."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        if len(uploads) > 1:  # one file is checked against both budgets as it is decoded
            (sizes,) = await self._run([partial(self.declared_pixels, uploads)], deadline)
            self.check_request_pixels(sizes)
        jobs = [partial(self.prepare_one, upload, with_png) for upload in uploads]
        return await self._run(jobs, deadline)

    async def _run(self, jobs: list[Callable[[], T]], deadline: float) -> list[T]:
        futures = [asyncio.wrap_future(future) for future in self._pool.submit_all(jobs)]
        try:
            async with asyncio.timeout_at(deadline):
                results = await asyncio.gather(*futures, return_exceptions=True)
        except TimeoutError:
            for future in futures:
                future.cancel()  # the pool skips what has not started
            raise TimedOut(
                "decoding the uploads took longer than the request timeout "
                "(SERVE_REQUEST_TIMEOUT_S); send fewer or smaller images"
            ) from None
        done: list[T] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            done.append(result)
        return done

    def declared_pixels(self, uploads: list[Upload]) -> list[int]:
        """Each upload's declared width x height, from its header alone."""
        sizes = []
        for upload in uploads:
            try:
                width, height = images.declared_size(upload.data, self.max_pixels)
            except images.ImageError as error:
                raise as_input_error(error, upload) from None
            sizes.append(width * height)
        return sizes

    def check_request_pixels(self, sizes: list[int]) -> None:
        if sum(sizes) > self.max_request_pixels:
            raise PayloadTooLarge(
                f"the {len(sizes)} images declare {sum(sizes)} pixels in all, more than "
                f"{self.max_request_pixels} (SERVE_MAX_REQUEST_PIXELS); split the upload"
            )

    def prepare_one(self, upload: Upload, with_png: bool) -> PreparedImage:
        limit = min(self.max_pixels, self.max_request_pixels)
        try:
            digit = images.digit_from_upload(upload.data, limit)
        except images.ImageError as error:
            raise as_input_error(error, upload) from None
        except Exception as error:  # whatever else a hostile file makes a decoder raise
            raise InvalidInput(
                f"{upload.described} cannot be decoded: {type(error).__name__}"
            ) from None
        if not np.isfinite(digit).all():
            raise InvalidInput(
                f"{upload.described} cannot be used: its pixel values are not finite numbers"
            )
        return PreparedImage(digit.reshape(-1), encode_png(digit) if with_png else None)

    def close(self) -> None:
        self._pool.close()


def as_input_error(error: images.ImageError, upload: Upload) -> ServeError:
    if isinstance(error, images.NoDigit):
        return InvalidInput(f"no digit found in {upload.described}: the image has no visible ink")
    if isinstance(error, images.NotAnImage):
        return UnsupportedMediaType(f"{upload.described}: {error}; send {ACCEPTED}")
    if isinstance(error, images.ImageTooLarge):
        return PayloadTooLarge(
            f"{upload.described} is too large: {error} "
            "(SERVE_MAX_IMAGE_PIXELS, SERVE_MAX_REQUEST_PIXELS)"
        )
    return InvalidInput(f"{upload.described} cannot be used: {error}")


def encode_png(digit: np.ndarray) -> str:
    """A [0, 1] grey image as a base64 PNG (no `data:` prefix)."""
    buffer = io.BytesIO()
    pixels = np.clip(np.rint(digit * 255), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def stack_rows(prepared: list[PreparedImage]) -> np.ndarray:
    return prepared[0].row[None] if len(prepared) == 1 else np.stack([i.row for i in prepared])


def encode_answer(
    card: ModelSpec,
    uploads: list[Upload],
    prepared: list[PreparedImage],
    outputs: np.ndarray,
    not_a_digit_below: float,
) -> Answer:
    """One prediction per upload, in upload order, named by its file, each flagged
    `not_a_digit` when its top probability is below `not_a_digit_below`."""
    predictions = [
        image_prediction(upload, image, prediction, not_a_digit_below)
        for upload, image, prediction in zip(
            uploads, prepared, class_predictions(card, outputs), strict=True
        )
    ]
    return json_answer(V1ImageResponse(card.name, str(card.version), predictions))


def image_prediction(
    upload: Upload, image: PreparedImage, prediction: ClassPrediction, not_a_digit_below: float
) -> ImagePrediction:
    score = prediction.probabilities[prediction.label]
    return ImagePrediction(
        filename=upload.filename,
        label=prediction.label,
        class_name=prediction.class_name,
        probabilities=prediction.probabilities,
        digit_score=score,
        not_a_digit=score < not_a_digit_below,
        input_png=image.input_png,
    )
