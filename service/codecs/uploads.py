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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from multipart import (
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)
from PIL import Image

from modelrepo.card import ModelCard
from service.codecs import images
from service.codecs.answer import Answer, json_answer
from service.codecs.kserve_v1 import class_predictions
from service.codecs.schemas import ImagePrediction, V1ImageResponse
from service.errors import (
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    ServeError,
    UnsupportedMediaType,
)

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


def check_image_model(card: ModelCard) -> None:
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
    """A bounded thread pool that turns uploads into model rows."""

    def __init__(self, workers: int, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image")

    async def prepare(self, uploads: list[Upload], with_png: bool) -> list[PreparedImage]:
        """Rows in upload order; the first bad file (in upload order) fails the request."""
        loop = asyncio.get_running_loop()
        if len(uploads) == 1:  # most requests: no gather around one job
            return [await loop.run_in_executor(self._pool, self.prepare_one, uploads[0], with_png)]
        jobs = [
            loop.run_in_executor(self._pool, self.prepare_one, upload, with_png)
            for upload in uploads
        ]
        prepared: list[PreparedImage] = []
        for result in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
            prepared.append(result)
        return prepared

    def prepare_one(self, upload: Upload, with_png: bool) -> PreparedImage:
        try:
            digit = images.preprocess_digit(images.decode(upload.data, self.max_pixels))
        except images.ImageError as error:
            raise as_input_error(error, upload) from None
        return PreparedImage(digit.reshape(-1), encode_png(digit) if with_png else None)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def as_input_error(error: images.ImageError, upload: Upload) -> ServeError:
    if isinstance(error, images.NoDigit):
        return InvalidInput(f"no digit found in {upload.described}: the image has no visible ink")
    if isinstance(error, images.NotAnImage):
        return UnsupportedMediaType(f"{upload.described}: {error}; send {ACCEPTED}")
    if isinstance(error, images.ImageTooLarge):
        return PayloadTooLarge(f"{upload.described} is too large: {error} (SERVE_MAX_IMAGE_PIXELS)")
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
    card: ModelCard, uploads: list[Upload], prepared: list[PreparedImage], outputs: np.ndarray
) -> Answer:
    """One prediction per upload, in upload order, named by its file."""
    predictions = [
        ImagePrediction(
            filename=upload.filename,
            label=prediction.label,
            class_name=prediction.class_name,
            probabilities=prediction.probabilities,
            input_png=image.input_png,
        )
        for upload, image, prediction in zip(
            uploads, prepared, class_predictions(card, outputs), strict=True
        )
    ]
    return json_answer(V1ImageResponse(card.name, str(card.version), predictions))
