"""Training rows drawn here, beside MNIST: printed and pen-drawn digits, and pictures of no digit.

MNIST's writers are one population; uploads also hold printed digits and other hands, and
sometimes no digit at all. These rows are drawn straight into MNIST's frame (white on black,
the ink's longer side fitted to 20 px, centred by mass: what `service.codecs.images` makes of
a picture), from the "tune" half of the fonts and pen templates only (`training.sources`), so
the wild test set (`bench.wild`) stays unseen. The non-digits (letters, symbols, random words,
numbers of several digits, scribbles, blots and smudges) carry the label `NO_CLASS`: the
fit teaches the model to spread its probabilities evenly over the ten classes for them, so a
low top probability says "not a digit" (outlier exposure, Hendrycks et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image, ImageDraw

from training import augment
from training.data import NO_CLASS, Split
from training.fonts import FONTS, has_glyphs, text_mask
from training.handwriting import TEMPLATES, catmull_rom, distort
from training.sources import Rng, choose

SIDE, PLACE = 28, 24  # glyphs are drawn this large in the canvas, then fitted to 20 px
POINTS, PEN_HEIGHT = 32, 32  # printed and pen-drawn sizes: enough detail for a 20 px digit
SUPERSAMPLE = 2  # pen strokes are drawn larger: framing shrinks them, antialiased

# Letters that are digits in many hands or fonts (O and 0, l and 1, S and 5, B and 8, g and 9,
# ...) are left out: no one could say which was meant.
LETTERS = "ACEFHKLMNPRTUVWXYacdefhkmnprtuvwxy"
SYMBOLS = "+-=%#@&?!*$<>~^/()[]{}" + "×÷€✓★♥→§¶©±√∞≈≠π"  # noqa: RUF001


def framed(masks: list[np.ndarray]) -> torch.Tensor:
    """Ink masks (H, W) in [0, 1], any size -> (N, 784) rows in MNIST's frame."""
    canvas = np.zeros((len(masks), SIDE, SIDE), np.float32)
    for row, mask in zip(canvas, masks, strict=True):
        height, width = mask.shape
        scale = PLACE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        glyph = Image.fromarray(np.uint8(np.clip(mask, 0, 1) * 255)).resize(
            size, Image.Resampling.BOX
        )
        top, left = (SIDE - size[1]) // 2, (SIDE - size[0]) // 2
        row[top : top + size[1], left : left + size[0]] = np.asarray(glyph, np.float32) / 255
    return in_frame(torch.from_numpy(canvas)[:, None], torch.Generator().manual_seed(0))


def in_frame(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N, 1, 28, 28) -> (N, 784) rows fitted to MNIST's 20 px box and centred by mass, with
    no variation (the generator's draws are made, and ignored: scale (1, 1), no shift)."""
    fitted = augment.renormalise(images, generator, 20.0, (1.0, 1.0), 0.0)
    return fitted.reshape(len(images), -1)


def printed(text: str, font: str, rng: Rng) -> np.ndarray:
    """`text` in `font`, sometimes emboldened, turned a little: its ink as a float mask."""
    bold = float(rng.uniform(0.5, 2.5)) if rng.random() < 0.35 else 0.0
    mask = text_mask(text, font, None, rng, bold_px=bold, points=POINTS)
    return np.asarray(mask, np.float32) / 255


def pen_drawn(strokes: list[np.ndarray], rng: Rng, height: float = PEN_HEIGHT) -> np.ndarray:
    """Strokes (unit coordinates about 0) drawn `height` px tall with a round pen from fine to
    marker, as antialiased polylines: `training.handwriting` draws pen pressure too, at many
    times the cost, and the augmentation varies the width anyway."""
    pen = height * rng.uniform(0.04, 0.16) * SUPERSAMPLE
    paths = [catmull_rom(stroke) * height * SUPERSAMPLE for stroke in strokes]
    every = np.vstack(paths)
    low = every.min(axis=0) - pen
    size = np.ceil(every.max(axis=0) + pen - low).astype(int) + 1
    image = Image.new("L", (int(size[0]), int(size[1])), 0)
    draw = ImageDraw.Draw(image)
    for path in paths:
        points = (path - low).ravel().tolist()
        draw.line(points, fill=255, width=max(1, round(pen)))
        for x, y in (points[:2], points[-2:]):  # round ends
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    return np.asarray(image, np.float32) / 255


def fonts_with(text: str) -> list[str]:
    return [name for name in FONTS["tune"] if all(has_glyphs(name, c) for c in set(text))]


def printed_digits(rng: Rng, per_font: int = 2) -> tuple[list[np.ndarray], list[int]]:
    """Every digit in every tuning font, `per_font` times (weights and tilts vary)."""
    masks, labels = [], []
    for font in fonts_with("0123456789"):
        for digit in range(10):
            for _ in range(per_font):
                masks.append(printed(str(digit), font, rng))
                labels.append(digit)
    return masks, labels


def pen_digits(rng: Rng, per_template: int = 8) -> tuple[list[np.ndarray], list[int]]:
    """Every tuning pen template of every digit, distorted `per_template` times."""
    masks, labels = [], []
    for digit, templates in TEMPLATES["tune"].items():
        for template in templates:
            for _ in range(per_template):
                masks.append(pen_drawn(distort(template, rng, 0.02, 0.35), rng))
                labels.append(digit)
    return masks, labels


def letter(rng: Rng) -> np.ndarray:
    text = choose(LETTERS, rng)
    return printed(text, choose(fonts_with(text), rng), rng)


def symbol(rng: Rng) -> np.ndarray:
    text = choose(SYMBOLS, rng)
    fonts = fonts_with(text)
    return printed(text, choose(fonts, rng), rng) if fonts else scribble(rng)


def random_word(rng: Rng) -> np.ndarray:
    """Two to six letters that spell nothing in particular (the test set has real words)."""
    text = "".join(choose(LETTERS, rng) for _ in range(int(rng.integers(2, 7))))
    return printed(text, choose(fonts_with(text), rng), rng)


def printed_number(rng: Rng) -> np.ndarray:
    text = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(2, 5))))
    return printed(text, choose(fonts_with(text), rng), rng)


def pen_number(rng: Rng) -> np.ndarray:
    """Two to four pen digits side by side, as one picture."""
    strokes = []
    for place, digit in enumerate(rng.integers(0, 10, int(rng.integers(2, 5)))):
        template = choose(TEMPLATES["tune"][int(digit)], rng)
        for stroke in distort(template, rng, 0.02, 0.3):
            strokes.append(stroke + np.array([place * rng.uniform(0.6, 0.8), rng.normal(0, 0.03)]))
    return pen_drawn(strokes, rng, height=PEN_HEIGHT / 2)


def scribble(rng: Rng) -> np.ndarray:
    """One to three random curves through random points: nothing anyone writes for a digit."""
    strokes = [
        rng.uniform(-0.5, 0.5, (int(rng.integers(3, 10)), 2)) for _ in range(rng.integers(1, 4))
    ]
    return pen_drawn(strokes, rng)


def shape(rng: Rng) -> np.ndarray:
    """A hand-drawn closed polygon, a zigzag or a spiral (the test set draws other shapes)."""
    style = int(rng.integers(3))
    if style == 0:
        corners = int(rng.integers(3, 7))
        angles = np.linspace(0, 2 * np.pi, corners, endpoint=False) + rng.uniform(0, 6.3)
        angles += rng.normal(0, 0.25, corners)  # irregular, never a sliver
        points = np.column_stack([np.cos(angles), np.sin(angles)]) * rng.uniform(0.35, 0.5, (1, 2))
        path = np.repeat(np.vstack([points, points[:1]]), 2, axis=0)  # corners, not curves
    elif style == 1:
        count = int(rng.integers(4, 9))
        path = np.column_stack(
            [np.linspace(-0.5, 0.5, count), np.where(np.arange(count) % 2, 0.2, -0.2)]
        )
        path = np.repeat(path, 2, axis=0)
    else:
        t = np.linspace(0, rng.uniform(2, 4) * 2 * np.pi, 60)
        path = np.column_stack([np.cos(t), np.sin(t)]) * (t / t[-1] * 0.5)[:, None]
    return pen_drawn([path + rng.normal(0, 0.01, path.shape)], rng)


def line(rng: Rng) -> np.ndarray:
    """A line within 30 degrees of horizontal, now and then with a second one: the ruling,
    a table edge or a crease left in a picture (near-vertical lines would be ones)."""
    strokes = []
    for _ in range(int(rng.integers(1, 3))):
        angle = rng.uniform(-np.pi / 6, np.pi / 6)
        centre = np.array([0.0, rng.uniform(-0.3, 0.3)])
        direction = np.array([np.cos(angle), np.sin(angle)]) * 0.5
        strokes.append(np.array([centre - direction, centre + direction]))
    return pen_drawn(strokes, rng)


NON_DIGITS: tuple[Callable[[Rng], np.ndarray], ...] = (
    letter,
    letter,
    letter,
    symbol,
    symbol,
    random_word,
    printed_number,
    pen_number,
    scribble,
    shape,
    line,
)


def blots(count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 784) smooth noise cut at a random level, and shaded half-planes: what a texture,
    a stain or a shadow becomes once the service has stretched its contrast and fitted it."""
    coarse = [torch.rand(count, 1, cells, cells, generator=generator) for cells in (2, 3, 5, 8)]
    smooth = torch.cat(
        [F.interpolate(n, size=(SIDE, SIDE), mode="bicubic", align_corners=False) for n in coarse]
    )[torch.randperm(4 * count, generator=generator)[:count]]
    low, high = smooth.amin(dim=(2, 3), keepdim=True), smooth.amax(dim=(2, 3), keepdim=True)
    level = low + (high - low) * (torch.rand(count, 1, 1, 1, generator=generator) * 0.5 + 0.3)
    cut = ((smooth - level) / (high - level).clamp_min(1e-3) * 3).clamp(0, 1)
    index = torch.arange(SIDE, dtype=torch.float32)
    angle = torch.rand(count, 1, 1, 1, generator=generator) * 2 * torch.pi
    ramp = index[None, None, :, None] * angle.sin() + index[None, None, None, :] * angle.cos()
    edge = torch.rand(count, 1, 1, 1, generator=generator) * 20 - 10
    shade = ((ramp - ramp.mean(dim=(2, 3), keepdim=True) - edge) / 4).sigmoid()
    half = torch.rand(count, 1, 1, 1, generator=generator) < 0.3
    x = torch.where(half, shade, cut)
    return in_frame(x, generator)


def mnist_numbers(digits: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 784) two or three MNIST digits side by side, fitted into one frame."""
    images = digits.reshape(-1, 1, SIDE, SIDE)
    rows = []
    for places, share in ((2, count - count // 2), (3, count // 2)):
        picked = images[torch.randint(len(images), (share * places,), generator=generator)]
        side_by_side = torch.cat(picked.reshape(places, -1, 1, SIDE, SIDE).unbind(0), dim=3)
        height = SIDE // places  # aspect kept: the service fits the longer side, the width
        squeezed = F.interpolate(side_by_side, size=(height, SIDE), mode="area")
        top = (SIDE - height) // 2
        rows.append(F.pad(squeezed, (0, 0, top, SIDE - height - top)))
    x = torch.cat(rows)
    return in_frame(x, generator)


def digit_rows(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Printed and pen digits: (N, 784) rows and their (N,) labels."""
    rng = np.random.default_rng([seed, 1])
    masks, labels = printed_digits(rng)
    pen_masks, pen_labels = pen_digits(rng)
    return framed(masks + pen_masks), torch.tensor(labels + pen_labels)


def non_digit_rows(seed: int, digits: torch.Tensor, drawn: int = 1_200) -> torch.Tensor:
    """(N, 784) rows that hold no digit: `drawn` pictures from the generators above, as many
    blots and smudges, and as many numbers made of MNIST digits."""
    rng = np.random.default_rng([seed, 2])
    masks = [NON_DIGITS[i % len(NON_DIGITS)](rng) for i in range(drawn)]
    generator = torch.Generator().manual_seed(seed)
    return torch.cat(
        [framed(masks), blots(drawn, generator), mnist_numbers(digits, drawn, generator)]
    )


# Shares of MNIST's training split added: on its 55,000 rows, each of the 480 drawn digits 8
# times (3,840) and 1,400 pictures' worth of non-digits (4,200). A smaller split gets fewer.
DIGIT_SHARE, NON_DIGIT_SHARE = 3_840 / 55_000, 4_200 / 55_000


def with_upload_like_rows(train: Split, seed: int) -> Split:
    """MNIST's training split and the rows drawn here: printed and pen digits (about 7% as
    many as MNIST's), and non-digits labelled NO_CLASS (about 8%)."""
    digits, labels = digit_rows(seed)
    wanted = round(DIGIT_SHARE * len(train))
    repeats = -(-wanted // len(digits))  # each drawn digit this often, augmented anew
    digits, labels = digits.repeat(repeats, 1)[:wanted], labels.repeat(repeats)[:wanted]
    others = non_digit_rows(seed, train.x, drawn=-(-round(NON_DIGIT_SHARE * len(train)) // 3))
    x = torch.cat([train.x, digits, others])
    y = torch.cat([train.y, labels, torch.full((len(others),), NO_CLASS)])
    return Split(x, y)


def describe_added(original: Split, train: Split) -> str:
    """One sentence for the card: the rows `with_upload_like_rows` added to `original`."""
    no_class = int((train.y == NO_CLASS).sum())
    digits = len(train) - len(original) - no_class
    return (
        f"Beside them, {digits} printed and pen-drawn digits and {no_class} pictures of no digit "
        "(taught to spread their probabilities evenly), drawn by training/synthetic.py."
    )
