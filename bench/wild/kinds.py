"""Every kind of picture the wild sets hold, digits and not: how each is drawn and photographed.

A renderer takes the digit to draw (None for the kinds that hold none), the set ("tune" or
"test": which fonts and pen templates it may use) and a seeded generator, and returns the
file's bytes, its extension and what it was drawn from (a font, a template, a texture).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from bench.uploads import (
    BLUE_INKS,
    OTHER_INKS,
    apply_ink,
    blotches,
    canvas_size,
    chalk,
    encode,
    fit,
    place,
    pressure,
    to_image,
)
from bench.wild import Rng, Split, choose
from bench.wild.surfaces import (
    Size,
    coordinates,
    dark_board,
    glare,
    notebook_paper,
    photograph,
    shadow,
    white_paper,
    whiteboard,
    with_glare,
)
from training.fonts import pick_font, text_mask
from training.handwriting import TEMPLATES, distort, draw_path, pen_digit
from training.synthetic import LETTERS, SYMBOLS  # digit-like letters left out


@dataclass(frozen=True)
class Drawing:
    """One picture as a file: its bytes, extension, and what it was drawn from."""

    data: bytes
    ext: str
    source: str


Renderer = Callable[[int | None, Split, Rng], Drawing]


@dataclass(frozen=True)
class Kind:
    """A kind of picture: whether it holds a digit, the range of its sides in px, its renderer."""

    name: str
    digit: bool
    sides: tuple[int, int]
    render: Renderer


BLACK_INKS = np.array([(30, 30, 35), (45, 45, 50), (20, 25, 45)], np.float32)
MARKERS = np.array([(35, 35, 40), (30, 60, 170), (185, 40, 45), (30, 125, 70)], np.float32)


def pick(colours: np.ndarray, rng: Rng, spread: float = 10) -> np.ndarray:
    return choose(colours, rng) + rng.uniform(-spread, spread, 3)


def pen_colour(rng: Rng) -> np.ndarray:
    """Ballpoint, fineliner or pencil-dark: mostly blue or black, now and then another colour."""
    roll = rng.random()
    return pick(BLUE_INKS if roll < 0.45 else BLACK_INKS if roll < 0.85 else OTHER_INKS, rng)


def placed(glyph: Image.Image, size: Size, rng: Rng) -> np.ndarray:
    """A cropped glyph (L, white ink) as coverage anywhere inside the canvas."""
    return place(np.asarray(fit(glyph, size), np.float32) / 255, size, rng)


def chalk_colour(page: np.ndarray, rng: Rng, contrast: tuple[float, float]) -> np.ndarray:
    """Chalk `contrast` levels brighter than the board under it, a little warm or cool."""
    level = float(np.median(page)) + rng.uniform(*contrast)
    return np.array([level, level, level - rng.uniform(0, 12)])


# --- digits -------------------------------------------------------------------------------------


def render_notebook(label: int | None, split: Split, rng: Rng, squared: bool) -> Drawing:
    """A pen digit on ruled or squared paper: the ruling is finer than the digit, so lines run
    through it, photographed."""
    assert label is not None
    size = canvas_size(rng, 200, 500)
    height = rng.uniform(0.4, 0.75) * size[1]
    pitch = height * (rng.uniform(0.2, 0.45) if squared else rng.uniform(0.3, 0.6))
    page = notebook_paper(rng, size, pitch, squared)
    mask, source = pen_digit(label, split, rng, size, height=height, pen=pen_px(rng, height))
    alpha = mask * rng.uniform(0.75, 0.95) * pressure(rng, size, 0.2)
    return Drawing(photograph(apply_ink(page, alpha, pen_colour(rng)), rng), "jpg", source)


def render_ruled(label: int | None, split: Split, rng: Rng) -> Drawing:
    return render_notebook(label, split, rng, squared=False)


def render_squared(label: int | None, split: Split, rng: Rng) -> Drawing:
    return render_notebook(label, split, rng, squared=True)


def pen_px(rng: Rng, height: float) -> float:
    """A ballpoint or fineliner, relative to how large the digit is written."""
    return max(1.5, height * rng.uniform(0.03, 0.075))


def render_whiteboard(label: int | None, split: Split, rng: Rng) -> Drawing:
    """Coloured marker on a whiteboard, often with a grid or lines, lamp glare across it."""
    assert label is not None
    size = canvas_size(rng, 250, 600)
    height = rng.uniform(0.4, 0.75) * size[1]
    page = whiteboard(rng, size, height * rng.uniform(0.25, 0.6))
    pen = height * rng.uniform(0.06, 0.12)
    mask, source = pen_digit(label, split, rng, size, height=height, pen=pen, speed_gain=0.1)
    alpha = mask * rng.uniform(0.8, 1.0) * pressure(rng, size, 0.3)  # a drying marker streaks
    pixels = apply_ink(page, alpha, pick(MARKERS, rng, 15))
    pixels = with_glare(pixels, glare(rng, size, int(rng.integers(1, 4))))
    return Drawing(photograph(pixels, rng, (55, 88)), "jpg", source)


def render_printed(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A printed digit (a font of the set, sometimes emboldened) on paper, photographed, now and
    then under a shadow."""
    assert label is not None
    size = canvas_size(rng, 150, 500)
    name = pick_font(split, rng)
    height = rng.uniform(0.35, 0.75) * size[1]
    bold = height * rng.uniform(0.02, 0.07) if rng.random() < 0.3 else 0.0
    mask = placed(text_mask(str(label), name, height, rng, bold_px=bold), size, rng)
    colour = pick(BLACK_INKS, rng) if rng.random() < 0.8 else pick(BLUE_INKS[2:], rng)
    pixels = apply_ink(white_paper(rng, size), mask * rng.uniform(0.8, 0.97), colour)
    if rng.random() < 0.3:
        pixels = pixels * shadow(rng, size)[..., None]
    return Drawing(photograph(pixels, rng), "jpg", f"font {name}")


def render_pen(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A handwriting-like pen digit on plain paper: a cleaned-up scan (PNG) or a photo."""
    assert label is not None
    size = canvas_size(rng, 150, 450)
    height = rng.uniform(0.4, 0.8) * size[1]
    mask, source = pen_digit(label, split, rng, size, height=height, pen=pen_px(rng, height))
    alpha = mask * rng.uniform(0.7, 0.95) * pressure(rng, size, 0.25)
    pixels = apply_ink(white_paper(rng, size), alpha, pen_colour(rng))
    if rng.random() < 0.3:
        return Drawing(encode(to_image(pixels), "PNG")[0], "png", source)
    return Drawing(photograph(pixels, rng), "jpg", source)


def render_thick(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A felt pen or a fat brush in a drawing app: strokes so wide that loops nearly close (8 and
    9, 6 and 0 and 5 alike). Half are photos of paper, half transparent canvas PNGs."""
    assert label is not None
    size = canvas_size(rng, 200, 450, square=0.5)
    height = rng.uniform(0.5, 0.8) * size[1]
    pen = height * rng.uniform(0.16, 0.32)
    mask, source = pen_digit(label, split, rng, size, height=height, pen=pen, speed_gain=0.2)
    if rng.random() < 0.5:
        pixels = apply_ink(white_paper(rng, size), mask * rng.uniform(0.85, 1), pick(MARKERS, rng))
        return Drawing(photograph(pixels, rng), "jpg", source)
    rgba = np.zeros((size[1], size[0], 4), np.float32)
    rgba[..., :3] = np.where(mask[..., None] > 0, rng.uniform(0, 60), 0)
    rgba[..., 3] = mask * 255
    return Drawing(encode(to_image(rgba), "PNG", optimize=True)[0], "png", source)


def render_faint_chalk(label: int | None, split: Split, rng: Rng) -> Drawing:
    """Chalk pressed lightly on a dark board: grainy strokes only 40-100 levels above it."""
    assert label is not None
    size = canvas_size(rng, 150, 500)
    page = dark_board(rng, size)
    height = rng.uniform(0.4, 0.8) * size[1]
    pen = height * rng.uniform(0.05, 0.1)
    mask, source = pen_digit(label, split, rng, size, height=height, pen=pen, speed_gain=0.15)
    alpha = chalk(mask, rng) * rng.uniform(0.6, 0.9)
    pixels = apply_ink(page, alpha, chalk_colour(page, rng, (40, 100)))
    return Drawing(photograph(pixels, rng, (60, 90)), "jpg", source)


def render_small_in_large(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A phone photo of a whole page with one small digit on it: 30-50 px in 1000-1600 px."""
    assert label is not None
    size = canvas_size(rng, 1000, 1600)
    height = rng.uniform(30, 50)
    if rng.random() < 0.5:
        mask, source = pen_digit(label, split, rng, size, height=height, pen=pen_px(rng, height))
    else:
        name = pick_font(split, rng)
        mask, source = placed(text_mask(str(label), name, height, rng), size, rng), f"font {name}"
    pixels = apply_ink(white_paper(rng, size), mask * rng.uniform(0.8, 0.95), pen_colour(rng))
    if rng.random() < 0.3:
        pixels = pixels * shadow(rng, size)[..., None]
    return Drawing(photograph(pixels, rng, (70, 90)), "jpg", source)


# --- not digits ---------------------------------------------------------------------------------

WORDS = (
    "cat", "dog", "Hello", "STOP", "yes", "no", "Name", "Total", "the", "and", "ok", "Hi",
    "data", "page", "note", "box", "sun", "tree", "fish", "milk", "EXIT", "open", "jazz",
    "wow", "ABC", "xyz", "Mon", "kg", "cm", "pH", "Date:", "TODO", "mlp", "Serve", "keep",
    "move", "week", "happy",
)  # fmt: skip
WRITING = ("paper", "ruled", "squared", "whiteboard", "board")


def writing_surface(rng: Rng, size: Size, height: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Any of the pages digits are written on, with an ink that suits it: the page, the ink's
    colour and the surface's name."""
    name = choose(WRITING, rng)
    if name == "paper":
        return white_paper(rng, size), pen_colour(rng), name
    if name in ("ruled", "squared"):
        pitch = height * rng.uniform(0.25, 0.6)
        return notebook_paper(rng, size, pitch, name == "squared"), pen_colour(rng), name
    if name == "whiteboard":
        return whiteboard(rng, size, height * rng.uniform(0.25, 0.6)), pick(MARKERS, rng), name
    page = dark_board(rng, size)
    return page, chalk_colour(page, rng, (80, 180)), name


def write_on_surface(mask: np.ndarray, rng: Rng, size: Size, height: float) -> bytes:
    """The ink written on a random surface (chalk grainy on a board, glare on a whiteboard) and
    photographed."""
    page, colour, name = writing_surface(rng, size, height)
    alpha = chalk(mask, rng) if name == "board" else mask * pressure(rng, size, 0.2)
    pixels = apply_ink(page, alpha * rng.uniform(0.75, 0.95), colour)
    if name == "whiteboard" and rng.random() < 0.6:
        pixels = with_glare(pixels, glare(rng, size, int(rng.integers(1, 3))))
    return photograph(pixels, rng)


def render_text(text: str, split: Split, rng: Rng, size: Size, height: float) -> Drawing:
    """`text` printed in a font of the set that has its characters, on a random surface."""
    name = pick_font(split, rng, text)
    bold = height * rng.uniform(0.02, 0.06) if rng.random() < 0.3 else 0.0
    mask = placed(text_mask(text, name, height, rng, bold_px=bold), size, rng)
    return Drawing(write_on_surface(mask, rng, size, height), "jpg", f"font {name}")


def render_letter(label: int | None, split: Split, rng: Rng) -> Drawing:
    """One printed letter, none that passes for a digit."""
    return render_one_of(LETTERS, split, rng, sides=(150, 450), height=(0.35, 0.75))


def render_one_of(
    texts: Sequence[str],
    split: Split,
    rng: Rng,
    sides: tuple[int, int],
    height: tuple[float, float],
) -> Drawing:
    """One of `texts` printed `height` (a share of the picture's) tall, on a random surface."""
    size = canvas_size(rng, *sides)
    text = choose(texts, rng)
    return render_text(text, split, rng, size, rng.uniform(*height) * size[1])


def render_symbol(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A printed symbol or a hand-drawn shape (star, arrow, tick, ...)."""
    size = canvas_size(rng, 150, 450)
    height = rng.uniform(0.35, 0.75) * size[1]
    if rng.random() < 0.6:
        return render_text(choose(SYMBOLS, rng), split, rng, size, height)
    name = choose(list(SHAPES), rng)
    strokes = distort(SHAPES[name], rng, 0.02, 0.2)
    mask = draw_path(strokes, size, height, pen_px(rng, height), rng)
    return Drawing(write_on_surface(mask, rng, size, height), "jpg", f"shape {name}")


def render_word(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A printed word, as wide as the picture allows."""
    return render_one_of(WORDS, split, rng, sides=(150, 500), height=(0.2, 0.5))


def render_number(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A number of two to four digits: printed, or handwritten with the set's pen templates."""
    size = canvas_size(rng, 150, 500)
    count = int(rng.integers(2, 5))
    digits = [int(d) for d in rng.integers(0, 10, count)]
    if rng.random() < 0.5:
        text = "".join(map(str, digits))
        if rng.random() < 0.2:
            text = f"{text[:-1]}.{text[-1]}"
        return render_text(text, split, rng, size, rng.uniform(0.2, 0.45) * size[1])
    strokes = []
    for place_no, digit in enumerate(digits):
        options = TEMPLATES[split][digit]
        for stroke in distort(choose(options, rng), rng, 0.02, 0.3):
            strokes.append(
                stroke + np.array([place_no * rng.uniform(0.6, 0.8), rng.normal(0, 0.03)])
            )
    height = rng.uniform(0.2, 0.4) * size[1]
    mask = draw_path(strokes, size, height, pen_px(rng, height), rng)
    return Drawing(write_on_surface(mask, rng, size, height), "jpg", f"handwritten {count}")


def render_scribble(label: int | None, split: Split, rng: Rng) -> Drawing:
    """Scribbles: a few random curves, zigzag hatching or a tangle of loops."""
    size = canvas_size(rng, 150, 450)
    style = ("curves", "zigzag", "loops")[int(rng.integers(3))]
    if style == "curves":
        strokes = [
            rng.uniform(-0.5, 0.5, (int(rng.integers(4, 12)), 2)) for _ in range(rng.integers(1, 4))
        ]
    elif style == "zigzag":
        count = int(rng.integers(5, 14))
        ys = np.linspace(-0.5, 0.5, count) + rng.normal(0, 0.02, count)
        xs = np.where(np.arange(count) % 2, 0.5, -0.5) + rng.normal(0, 0.05, count)
        strokes = [np.column_stack([xs, ys])]
    else:
        t = np.linspace(0, rng.uniform(4, 9) * 2 * np.pi, 120)
        x = np.linspace(-0.7, 0.7, len(t)) + 0.18 * np.cos(t)
        strokes = [np.column_stack([x, 0.3 * np.sin(t)]) + rng.normal(0, 0.01, (len(t), 2))]
    height = rng.uniform(0.3, 0.7) * size[1]
    mask = draw_path(strokes, size, height, pen_px(rng, height), rng)
    return Drawing(write_on_surface(mask, rng, size, height), "jpg", f"scribble {style}")


def render_texture(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A picture of no writing at all: noise, a gradient, clouds, wood, fabric, gravel, bokeh."""
    size = canvas_size(rng, 150, 600)
    name = choose(list(TEXTURES), rng)
    pixels = TEXTURES[name](rng, size)
    return Drawing(photograph(pixels, rng, (60, 92)), "jpg", f"texture {name}")


def render_empty(label: int | None, split: Split, rng: Rng) -> Drawing:
    """A page or board with nothing on it, but with what cameras see: shadows, ruling, glare."""
    size = canvas_size(rng, 150, 600)
    page, _, name = writing_surface(rng, size, rng.uniform(0.3, 0.7) * size[1])
    if rng.random() < 0.6:
        page = page * shadow(rng, size)[..., None]
    if name == "whiteboard" or rng.random() < 0.25:
        page = with_glare(page, glare(rng, size, int(rng.integers(1, 3))))
    return Drawing(photograph(page, rng), "jpg", f"empty {name}")


# --- shapes and textures ------------------------------------------------------------------------

# fmt: off
SHAPES: dict[str, list[list[tuple[float, float]]]] = {
    "triangle": [[(0.5, 0.05), (0.5, 0.05), (0.95, 0.9), (0.95, 0.9), (0.05, 0.9), (0.05, 0.9),
                  (0.5, 0.05)]],
    "square": [[(0.1, 0.1), (0.1, 0.1), (0.9, 0.1), (0.9, 0.1), (0.9, 0.9), (0.9, 0.9),
                (0.1, 0.9), (0.1, 0.9), (0.1, 0.1)]],
    "star": [[(0.5, 0.02), (0.5, 0.02), (0.8, 0.95), (0.8, 0.95), (0.02, 0.35), (0.02, 0.35),
              (0.98, 0.35), (0.98, 0.35), (0.2, 0.95), (0.2, 0.95), (0.5, 0.02)]],
    "arrow": [[(0.05, 0.5), (0.95, 0.5)], [(0.65, 0.2), (0.65, 0.2), (0.95, 0.5), (0.95, 0.5),
                                           (0.65, 0.8)]],
    "tick": [[(0.05, 0.55), (0.05, 0.55), (0.35, 0.9), (0.35, 0.9), (0.95, 0.1)]],
    "cross": [[(0.1, 0.1), (0.9, 0.9)], [(0.9, 0.1), (0.1, 0.9)]],
    "hash": [[(0.35, 0.05), (0.3, 0.95)], [(0.7, 0.05), (0.65, 0.95)], [(0.05, 0.35), (0.95, 0.35)],
             [(0.05, 0.65), (0.95, 0.65)]],
    "heart": [[(0.5, 0.3), (0.3, 0.05), (0.05, 0.3), (0.5, 0.95), (0.5, 0.95), (0.95, 0.3),
               (0.7, 0.05), (0.5, 0.3)]],
    "smiley": [[(0.5, 0.02), (0.05, 0.5), (0.5, 0.98), (0.95, 0.5), (0.5, 0.02)],
               [(0.35, 0.3), (0.35, 0.4)], [(0.65, 0.3), (0.65, 0.4)],
               [(0.25, 0.62), (0.5, 0.8), (0.75, 0.62)]],
}
# fmt: on


def random_colour(rng: Rng) -> np.ndarray:
    return rng.uniform(20, 235, 3).astype(np.float32)


def texture_noise(rng: Rng, size: Size) -> np.ndarray:
    return random_colour(rng) + rng.normal(0, rng.uniform(15, 60), (size[1], size[0], 3))


def texture_gradient(rng: Rng, size: Size) -> np.ndarray:
    y, x = coordinates(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = x / size[0] * np.cos(angle) + y / size[1] * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    return random_colour(rng) * (1 - ramp[..., None]) + random_colour(rng) * ramp[..., None]


def clouds(rng: Rng, size: Size) -> np.ndarray:
    """Fractal noise in about [-1, 1]: bumps at several scales, coarse ones strongest."""
    return sum(blotches(rng, size, cells) / (i + 1) for i, cells in enumerate((3, 6, 12, 24, 48)))


def texture_clouds(rng: Rng, size: Size) -> np.ndarray:
    field = clouds(rng, size)[..., None] * rng.uniform(20, 50)
    return random_colour(rng) + field * rng.uniform(0.5, 1.5, 3)


def texture_wood(rng: Rng, size: Size) -> np.ndarray:
    _, x = coordinates(size)
    warp = clouds(rng, size) * rng.uniform(10, 40)
    rings = np.sin((x * rng.uniform(0.05, 0.2) + warp) * rng.uniform(0.3, 1))
    brown = np.array([rng.uniform(120, 190), rng.uniform(70, 120), rng.uniform(30, 70)])
    return brown * (0.8 + 0.15 * rings[..., None])


def texture_fabric(rng: Rng, size: Size) -> np.ndarray:
    y, x = coordinates(size)
    pitch = rng.uniform(2, 8)
    weave = np.sin(x * np.pi / pitch) * np.sin(y * np.pi / pitch)
    noise = rng.normal(0, 6, (size[1], size[0], 1))
    return random_colour(rng) * (0.85 + 0.12 * weave[..., None]) + noise


def texture_gravel(rng: Rng, size: Size) -> np.ndarray:
    grain = np.asarray(
        Image.fromarray(
            rng.uniform(-1, 1, (size[1] // 3 + 1, size[0] // 3 + 1)).astype(np.float32)
        ).resize(size, Image.Resampling.NEAREST)
    )
    return rng.uniform(90, 170) + 40 * grain[..., None] * rng.uniform(0.7, 1.3, 3)


def texture_bokeh(rng: Rng, size: Size) -> np.ndarray:
    y, x = coordinates(size)
    pixels = np.broadcast_to(random_colour(rng) * 0.5, (size[1], size[0], 3)).copy()
    for _ in range(int(rng.integers(5, 25))):
        cx, cy, r = (
            rng.uniform(0, size[0]),
            rng.uniform(0, size[1]),
            rng.uniform(0.03, 0.2) * max(size),
        )
        disc = np.clip((r - np.hypot(x - cx, y - cy)) / (0.3 * r), 0, 1)
        pixels += disc[..., None] * random_colour(rng) * rng.uniform(0.2, 0.6)
    return pixels


TEXTURES: dict[str, Callable[[Rng, Size], np.ndarray]] = {
    "noise": texture_noise,
    "gradient": texture_gradient,
    "clouds": texture_clouds,
    "wood": texture_wood,
    "fabric": texture_fabric,
    "gravel": texture_gravel,
    "bokeh": texture_bokeh,
}


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("ruled", True, (200, 500), render_ruled),
        Kind("squared", True, (200, 500), render_squared),
        Kind("whiteboard", True, (250, 600), render_whiteboard),
        Kind("printed", True, (150, 500), render_printed),
        Kind("pen", True, (150, 450), render_pen),
        Kind("thick", True, (200, 450), render_thick),
        Kind("faint_chalk", True, (150, 500), render_faint_chalk),
        Kind("small_in_large", True, (1000, 1600), render_small_in_large),
        Kind("letter", False, (150, 450), render_letter),
        Kind("symbol", False, (150, 450), render_symbol),
        Kind("word", False, (150, 500), render_word),
        Kind("number", False, (150, 500), render_number),
        Kind("scribble", False, (150, 450), render_scribble),
        Kind("texture", False, (150, 600), render_texture),
        Kind("empty", False, (150, 600), render_empty),
    )
}
