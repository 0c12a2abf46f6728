"""The steps for digits from outside MNIST, each on a picture that needs it: ruled paper, thick
strokes, glare, a small digit in a large photo. Without its step, each picture is misread."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from bench.wild.score import open_model
from bench.wild.sets import picture
from service.codecs.images import decode, digit_from_upload, drop_specks, preprocess_digit
from service.codecs.uploads import ImagePreparer, Upload
from tests.conftest import MODELS_DIR

MNIST = MODELS_DIR / "mnist" / "3"


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def read():  # type: ignore[no-untyped-def]
    """The bundled default mnist's reading of a 28x28."""
    model = open_model(MNIST)
    return lambda digit: int(model.run_batch([digit.reshape(1, -1)])[0].argmax())


def ink_rows_cols(digit: np.ndarray, level: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    return np.flatnonzero(digit.max(axis=1) > level), np.flatnonzero(digit.max(axis=0) > level)


# --- ruled and squared paper ---------------------------------------------------------------------


def ruled_seven(squared: bool) -> bytes:
    """A pen 7 on a notebook page whose blue ruling (3 px, tilted a little) runs through it."""
    page = Image.new("RGB", (360, 300), (238, 236, 228))
    pen = ImageDraw.Draw(page)
    for y in range(14, 300, 34):
        pen.line((0, y, 360, y + 8), fill=(105, 135, 195), width=3)
    if squared:
        for x in range(20, 360, 34):
            pen.line((x, 0, x - 6, 300), fill=(105, 135, 195), width=3)
    pen.line((120, 70, 240, 70, 165, 250), fill=(35, 35, 45), width=11, joint="curve")
    return encode(page.filter(ImageFilter.GaussianBlur(0.7)), "JPEG", quality=90)


@pytest.mark.parametrize("squared", [False, True])
def test_ruled_and_grid_lines_are_gone_from_the_28x28(squared: bool, read) -> None:  # type: ignore[no-untyped-def]
    """Only the 7 is left: its ink spans 20 px, with nothing beside it in any row or column that
    a line ran along; the diagonal keeps the rows where it crossed a line."""
    digit = preprocess_digit(decode(ruled_seven(squared), 10**7))
    rows, cols = ink_rows_cols(digit)
    assert rows[-1] - rows[0] + 1 <= 22
    assert cols[-1] - cols[0] + 1 <= 22
    assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))  # no row of the 7 cut out
    outside = np.ones_like(digit, bool)
    outside[rows[0] - 1 : rows[-1] + 2, cols[0] - 1 : cols[-1] + 2] = False
    assert digit[outside].max() < 0.1
    assert read(digit) == 7


def test_return_input_shows_the_page_without_its_ruling() -> None:
    """`?return_input=true`'s PNG is the 28x28 the model saw: the 7, no line."""
    preparer = ImagePreparer(1, 10**7, 10**8)
    try:
        prepared = preparer.prepare_one(Upload("ruled.jpg", ruled_seven(False)), with_png=True)
    finally:
        preparer.close()
    assert prepared.input_png is not None
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(prepared.input_png))), np.float32)
    assert np.abs(shown / 255 - prepared.row.reshape(28, 28)).max() <= 0.5 / 255
    rows, cols = ink_rows_cols(shown / 255)
    outside = np.ones(shown.shape, bool)
    outside[rows[0] - 1 : rows[-1] + 2, cols[0] - 1 : cols[-1] + 2] = False
    assert shown[outside].max() < 0.1 * 255


# --- thick strokes -------------------------------------------------------------------------------


def thick_eight() -> bytes:
    """An 8 in a felt pen a fifth of the digit wide: its loops' holes are a few pixels across,
    gone once it is fitted into 20 px."""
    page = Image.new("L", (300, 300), 245)
    pen = ImageDraw.Draw(page)
    pen.ellipse((100, 30, 200, 140), outline=20, width=48)
    pen.ellipse((90, 125, 210, 270), outline=20, width=56)
    return encode(page)


def test_thick_strokes_are_thinned_so_the_loops_stay_open(read) -> None:  # type: ignore[no-untyped-def]
    digit = preprocess_digit(decode(thick_eight(), 10**7))
    rows, cols = ink_rows_cols(digit)
    middle = (cols[0] + cols[-1]) // 2
    column = digit[rows[0] : rows[-1] + 1, middle]
    # Down the middle: ink, hole, ink (the waist), hole, ink: two open loops.
    runs = np.count_nonzero(np.diff((column > 0.5).astype(np.int8)) == 1) + (column[0] > 0.5)
    assert runs == 3
    assert read(digit) == 8


# --- glare ---------------------------------------------------------------------------------------


def glare_over(pixels: np.ndarray, centre: tuple[float, float], size: tuple[float, float]) -> None:
    """Screen a lamp's reflection (up to 0.85 of white) over `pixels` in place."""
    y, x = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]].astype(np.float32)
    light = 0.85 * np.exp(
        -0.5 * (((x - centre[0]) / size[0]) ** 2 + ((y - centre[1]) / size[1]) ** 2)
    )
    pixels += (255 - pixels) * light[..., None]


def whiteboard_one() -> bytes:
    """A marker 1 on a whiteboard, a lamp's reflection over its lower half and another beside it."""
    board = Image.new("RGB", (320, 300), (214, 218, 222))
    ImageDraw.Draw(board).line((200, 50, 200, 250), fill=(40, 70, 160), width=16)
    pixels = np.asarray(board, np.float32).copy()
    glare_over(pixels, (200, 215), (60, 30))
    glare_over(pixels, (70, 120), (40, 70))
    return encode(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), "JPEG", quality=90)


def test_glare_is_not_ink_and_the_ink_under_it_is_kept(read) -> None:  # type: ignore[no-untyped-def]
    """The reflection beside the 1 adds no ink; the half of the stroke under the other one is as
    strong as the rest (faded, the 1 is cut short and its lower half nearly gone)."""
    digit = preprocess_digit(decode(whiteboard_one(), 10**7))
    rows, cols = ink_rows_cols(digit)
    assert cols[-1] - cols[0] + 1 <= 6  # one narrow stroke, nothing beside it
    assert rows[-1] - rows[0] + 1 >= 19
    strength = digit[rows[1] : rows[-1]].max(axis=1)  # the stroke, its ends' fringe left out
    assert strength.min() > 0.35  # where the reflection's rim crosses it, at least
    assert read(digit) == 1


def test_a_patch_lighter_than_the_page_is_not_ink() -> None:
    """A white sticker on a grey card deviates from the card as much as the dark ink does, the
    other way: only the 1 is ink."""
    card = Image.new("L", (300, 300), 120)
    pen = ImageDraw.Draw(card)
    pen.rectangle((30, 40, 110, 120), fill=215)
    pen.line((200, 50, 200, 250), fill=10, width=14)
    digit = preprocess_digit(decode(encode(card), 10**7))
    _, cols = ink_rows_cols(digit)
    assert cols[-1] - cols[0] + 1 <= 6


# --- a small digit in a large frame --------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_a_small_digit_in_a_large_photo_is_found_and_read(n: int, read) -> None:  # type: ignore[no-untyped-def]
    """A 30-50 px digit in a 1000-1600 px photo of a page (`bench.wild`'s kind, fixed seeds) is
    5-13 px at the 256 px working size, under the contrast stretch's percentiles and beside the
    page's shadows: it is found there and cropped from the photo decoded again at full size."""
    drawing = picture("small_in_large", "tune", n, seed=5)
    assert read(digit_from_upload(drawing.data, 10**8)) == n % 10


# --- specks parted from the digit ---------------------------------------------------------------


def seven_with_dust(dust: bool) -> Image.Image:
    """A dark 7 on a light page, and now and then a blot of dust far below and to the right."""
    image = Image.new("L", (300, 300), 230)
    draw = ImageDraw.Draw(image)
    draw.line([(60, 50), (170, 50), (100, 200)], fill=20, width=12)
    if dust:
        draw.ellipse((270, 272, 279, 281), fill=20)
    return image


def test_a_speck_parted_from_the_digit_does_not_set_the_crop(read) -> None:  # type: ignore[no-untyped-def]
    """Without the step the blot stretches the crop, the 7 shrinks to a corner of the 28x28."""
    clean = preprocess_digit(seven_with_dust(False))
    dusty = preprocess_digit(seven_with_dust(True))
    assert np.abs(dusty - clean).max() < 0.05
    assert read(dusty) == 7


def test_a_digits_own_parts_are_kept_however_far_apart() -> None:
    """Two strokes of one digit (a 5's flag off its body): each holds more than 5% of the ink."""
    ink = np.zeros((200, 200), np.float32)
    ink[20:30, 60:150] = 1.0  # the flag
    ink[80:180, 60:70] = 1.0  # the body, far below
    assert np.array_equal(drop_specks(ink), ink)
    ink[195:197, 190:192] = 1.0  # and one speck of 4 px
    cleaned = drop_specks(ink)
    assert cleaned[195:197, 190:192].max() == 0
    assert np.array_equal(cleaned[:190], ink[:190])


def test_a_speck_close_to_the_digit_is_part_of_it() -> None:
    """Nearer than 4% of the picture's side, a dot counts with the digit (it may be a stroke's
    end broken off)."""
    ink = np.zeros((200, 200), np.float32)
    ink[40:160, 90:100] = 1.0
    ink[163:165, 94:96] = 1.0  # 3 rows below the stroke
    assert np.array_equal(drop_specks(ink), ink)
