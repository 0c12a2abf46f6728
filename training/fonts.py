"""Printed characters: digits, letters, symbols and words in the fonts matplotlib ships.

The fonts are split: the tuning set prints with some families and weights, the test set with
others, so a method tuned on the tuning set meets typefaces it has not seen. Every machine with
the `train` extra has these files; nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from training.sources import Rng, Split, choose

TUNE_FONTS = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSerif",
    "DejaVuSerif-BoldItalic",
    "DejaVuSansMono",
    "DejaVuSansMono-Oblique",
    "STIXGeneral",
    "STIXGeneralBolIta",
    "cmr10",
    "cmss10",
    "cmti10",
)
TEST_FONTS = (
    "DejaVuSans-BoldOblique",
    "DejaVuSerif-Bold",
    "DejaVuSerif-Italic",
    "DejaVuSansMono-Bold",
    "DejaVuSansMono-BoldOblique",
    "STIXGeneralBol",
    "STIXGeneralItalic",
    "cmb10",
    "cmtt10",
)
FONTS: dict[Split, tuple[str, ...]] = {"tune": TUNE_FONTS, "test": TEST_FONTS}


def font_dir() -> Path:
    """matplotlib's bundled TrueType fonts, found without importing matplotlib (slow)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "printed pictures need matplotlib's fonts: pip install 'mlp-serve[train]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


@functools.cache
def font(name: str, points: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_dir() / f"{name}.ttf"), points)


def text_mask(
    text: str,
    name: str,
    height: float | None,
    rng: Rng,
    *,
    bold_px: float = 0.0,
    tilt: float = 4.0,
    points: int = 100,
) -> Image.Image:
    """`text` in font `name`, its ink `height` px tall, thickened by `bold_px` (a heavier weight
    or a felt pen), turned up to `tilt` degrees: white ink on black (L), cropped to the ink.
    With no `height`, the text is drawn at `points` (one font object per size is cached:
    loading one costs more than drawing)."""
    if height is not None:
        left, top, right, bottom = font(name, 100).getbbox(text)
        points = max(4, round(100 * height / max(bottom - top, 1)))
    face = font(name, points)
    left, top, right, bottom = face.getbbox(text)
    stroke = max(0, round(bold_px))
    pad = stroke + 4
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(image).text(
        (pad - left, pad - top), text, fill=255, font=face, stroke_width=stroke, stroke_fill=255
    )
    image = image.rotate(rng.uniform(-tilt, tilt), Image.Resampling.BICUBIC, expand=True)
    return image.crop(image.getbbox())


@functools.cache
def has_glyphs(name: str, text: str) -> bool:
    """Every character of `text` is in the font (not drawn as its missing-glyph box)."""
    face = font(name, 40)
    missing = bytes(face.getmask(chr(0xE000)))  # a private-use point: no font here has it
    return all(c.isspace() or bytes(face.getmask(c)) != missing for c in text)


def pick_font(split: Split, rng: Rng, text: str = "0123456789") -> str:
    """One of `split`'s fonts that has every character of `text`."""
    fonts = [name for name in FONTS[split] if has_glyphs(name, text)]
    return choose(fonts, rng)
