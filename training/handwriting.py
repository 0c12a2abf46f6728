"""Handwriting-like pen strokes: digit shapes as paths through control points, drawn with jitter,
slant and a width that follows the pen's speed.

A template (in datasets/pen_templates.json) is a digit as someone writes it: one or more
strokes, each a list of (x, y) points in a unit box (y down), joined by a Catmull-Rom spline;
a point given twice is a corner. Every digit has three templates for the tuning set and two
others, written differently, for the test set, so a method tuned on one set meets shapes it
has not seen.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from training.sources import SPLITS, Rng, Split

Point = tuple[float, float]
Stroke = Sequence[Point]
Template = Sequence[Stroke]
SUPERSAMPLE = 3  # drawn larger and shrunk: antialiased edges


def load_templates(path: Path) -> dict[Split, dict[int, list[Template]]]:
    """templates.json: {set: {digit: [template, ...]}}, a template a list of strokes, a stroke a
    list of [x, y] points."""
    raw = json.loads(path.read_text())
    return {
        split: {
            int(digit): [[[(x, y) for x, y in stroke] for stroke in t] for t in templates]
            for digit, templates in raw[split].items()
        }
        for split in SPLITS
    }


TEMPLATES = load_templates(Path(__file__).with_name("datasets") / "pen_templates.json")
TUNE_TEMPLATES, TEST_TEMPLATES = TEMPLATES["tune"], TEMPLATES["test"]


def catmull_rom(points: np.ndarray, per_segment: int = 24) -> np.ndarray:
    """A smooth path through every point (uniform Catmull-Rom); a repeated point is a corner."""
    if len(points) == 1:
        return points.copy()
    padded = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    t2, t3 = t * t, t * t * t
    pieces = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1 : i + 3]
        pieces.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                + (3 * p1 - p0 - 3 * p2 + p3) * t3
            )
        )
    pieces.append(points[-1:])
    return np.vstack(pieces)


def distort(template: Template, rng: Rng, jitter: float, slant: float) -> list[np.ndarray]:
    """Each control point moved a little, the whole digit slanted (x shifts with height), made
    narrower or wider and turned a few degrees: no two hands write one template alike."""
    aspect = rng.uniform(0.55, 0.85)
    shear = rng.uniform(-slant, slant * 0.6)  # right-handed writers lean right more often
    angle = np.deg2rad(rng.uniform(-6, 6))
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    strokes = []
    for stroke in template:
        points = np.asarray(stroke, np.float64) + rng.normal(0, jitter, (len(stroke), 2))
        points -= 0.5
        points[:, 0] = points[:, 0] * aspect - shear * points[:, 1]
        strokes.append(points @ turn.T)
    return strokes


def widths(path: np.ndarray, base: float, speed_gain: float, rng: Rng) -> np.ndarray:
    """Pen width along a path: thinner where the pen moves fast (long spline steps), swelling
    where it slows in curves and corners, tapered where it lands and lifts."""
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    speed = np.convolve(np.r_[steps[:1], steps], np.ones(5) / 5, mode="same")
    relative = speed / max(float(np.median(speed)), 1e-9)
    width = base * np.clip(1 + speed_gain * (1 - relative), 0.55, 1.25)
    ends = np.minimum(np.arange(len(path)), np.arange(len(path))[::-1]) / 8
    taper = rng.uniform(0.5, 0.9)
    return width * (taper + (1 - taper) * np.clip(ends, 0, 1))


def draw_strokes(
    strokes: Sequence[np.ndarray],
    box: tuple[float, float, float],
    size: tuple[int, int],
    pen: float,
    rng: Rng,
    speed_gain: float = 0.35,
) -> np.ndarray:
    """Ink coverage in [0, 1] over a (width, height) canvas: strokes in unit coordinates centred
    on 0 are scaled by `box` (centre x, centre y, height in px) and drawn with a round pen of
    `pen` px, as overlapping discs spaced closer than their radius."""
    cx, cy, height = box
    s = SUPERSAMPLE
    pens = []
    for stroke in strokes:
        path = catmull_rom(stroke) * height + (cx, cy)
        pens.append(discs(path, widths(path, pen, speed_gain, rng) / 2))
    every = np.vstack(pens)
    # Drawn only over the strokes' own box: a small digit in a large photo stays cheap.
    left, top = np.floor(np.maximum(every[:, :2] - every[:, 2:], 0).min(axis=0)).astype(int)
    right = min(size[0], int(np.ceil((every[:, 0] + every[:, 2]).max())) + 1)
    bottom = min(size[1], int(np.ceil((every[:, 1] + every[:, 2]).max())) + 1)
    local = Image.new("L", ((right - left) * s, (bottom - top) * s), 0)
    draw = ImageDraw.Draw(local)
    for x, y, r in (every - (left, top, 0)) * s:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    coverage = np.zeros((size[1], size[0]), np.float32)
    small = local.resize((right - left, bottom - top), Image.Resampling.BOX)
    coverage[top:bottom, left:right] = np.asarray(small, np.float32) / 255
    return coverage


def discs(path: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """(x, y, radius) rows along the path, spaced at most 0.4 of the thinnest radius apart (and
    at most a sixth of a pixel after supersampling): the discs overlap into a smooth stroke."""
    arc = np.r_[0, np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))]
    step = max(0.4 * float(radius.min()), 0.5 / SUPERSAMPLE)
    at = np.r_[np.arange(0, arc[-1], step), arc[-1]]
    return np.column_stack(
        [np.interp(at, arc, path[:, 0]), np.interp(at, arc, path[:, 1]), np.interp(at, arc, radius)]
    )


def extent(strokes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest (x, y) of the strokes' control points, in unit coordinates."""
    points = np.vstack(strokes)
    return points.min(axis=0), points.max(axis=0)


def place_box(
    strokes: Sequence[np.ndarray], size: tuple[int, int], height: float, pen: float, rng: Rng
) -> tuple[float, float, float]:
    """A (centre x, centre y, height) for strokes `height` px tall, anywhere fully inside."""
    low, high = extent(strokes)
    half = (high - low) * height / 2 + pen
    centre = (low + high) / 2 * height
    x = rng.uniform(half[0], max(half[0], size[0] - half[0])) - centre[0]
    y = rng.uniform(half[1], max(half[1], size[1] - half[1])) - centre[1]
    return float(x), float(y), height


def pen_digit(
    label: int,
    split: Split,
    rng: Rng,
    size: tuple[int, int],
    *,
    height: float,
    pen: float,
    jitter: float = 0.02,
    slant: float = 0.35,
    speed_gain: float = 0.35,
) -> tuple[np.ndarray, str]:
    """One of `split`'s templates for `label`, distorted and drawn `height` px tall with a pen
    of about `pen` px, placed at random inside a (width, height) canvas: its ink coverage, and
    which template it was ("template 8.1")."""
    options = TEMPLATES[split][label]
    choice = int(rng.integers(len(options)))  # its index names the source
    strokes = distort(options[choice], rng, jitter, slant)
    return draw_path(strokes, size, height, pen, rng, speed_gain), f"template {label}.{choice}"


def draw_path(
    strokes: Sequence[np.ndarray],
    size: tuple[int, int],
    height: float,
    pen: float,
    rng: Rng,
    speed_gain: float = 0.35,
) -> np.ndarray:
    """Strokes (unit coordinates about 0) drawn `height` px tall anywhere inside the canvas."""
    box = place_box(strokes, size, height, pen, rng)
    return draw_strokes(strokes, box, size, pen, rng, speed_gain)
