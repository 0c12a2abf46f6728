"""What digits are written on and how the picture is taken: ruled and squared paper, whiteboards
with glare, dark boards, shadows, and the camera's blur, noise and JPEG.

Pages are float RGB arrays (height, width, 3) in 0-255 levels; ink goes on with
`bench.uploads.apply_ink`, whose paper texture, lighting and encoding these build on.
"""

from __future__ import annotations

import numpy as np
from PIL import ImageFilter

from bench.uploads import BOARDS, blotches, jpeg, lighting, paper, to_image
from bench.wild import Rng, choose

Size = tuple[int, int]  # (width, height), Pillow's order
RULING = np.array([(150, 180, 225), (165, 190, 215), (170, 170, 175)], np.float32)
MARGIN_RED = np.array([225, 120, 130], np.float32)


def coordinates(size: Size) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows and columns as (height, width) float grids."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    return y, x


def line_family(
    size: Size, spacing: float, thickness: float, angle: float, offset: float
) -> np.ndarray:
    """Coverage of parallel lines `spacing` px apart, `thickness` px wide, turned by `angle`
    radians from horizontal (a page never lies square to the camera), antialiased."""
    y, x = coordinates(size)
    across = y * np.cos(angle) - x * np.sin(angle) - offset
    distance = np.abs((across + spacing / 2) % spacing - spacing / 2)
    return np.clip(thickness / 2 + 0.5 - distance, 0, 1)


def ruled_lines(size: Size, rng: Rng, spacing: float, squared: bool) -> np.ndarray:
    """A notebook's ruling: horizontal lines (and vertical ones for squared paper) of one pitch,
    at a random phase, so some always cross whatever is written there."""
    thickness, angle = rng.uniform(0.8, 2.5), rng.uniform(-0.04, 0.04)
    lines = line_family(size, spacing, thickness, angle, rng.uniform(0, spacing))
    if squared:
        across = line_family(size, spacing, thickness, angle + np.pi / 2, rng.uniform(0, spacing))
        lines = np.maximum(lines, across)
    return lines


def white_paper(rng: Rng, size: Size) -> np.ndarray:
    """White to cream paper with a little texture."""
    white = rng.uniform(215, 250)
    tone = np.array([white, white - rng.uniform(0, 5), white - rng.uniform(0, 14)])
    return paper(rng, size, tone, texture=rng.uniform(1.5, 5))


def notebook_paper(rng: Rng, size: Size, spacing: float, squared: bool) -> np.ndarray:
    """White paper with blue or grey ruling and, on ruled pages, often a red margin line."""
    page = white_paper(rng, size)
    colour = choose(RULING, rng) + rng.uniform(-10, 10, 3)
    lines = ruled_lines(size, rng, spacing, squared) * rng.uniform(0.5, 0.95)
    page = page * (1 - lines[..., None]) + colour * lines[..., None]
    if not squared and rng.random() < 0.3:
        margin = line_family(
            size, 1e9, rng.uniform(1, 2.5), np.pi / 2, -rng.uniform(0.05, 0.95) * size[0]
        )
        page = page * (1 - margin[..., None]) + MARGIN_RED * margin[..., None]
    return page


def whiteboard(rng: Rng, size: Size, spacing: float) -> np.ndarray:
    """A whiteboard: bluish grey-white, ghosts of wiped-off marker, sometimes a printed grid or
    lines (planning boards)."""
    white = rng.uniform(205, 245)
    page = paper(rng, size, np.array([white - 4, white, white + 3]), texture=rng.uniform(1, 3))
    ghost = np.clip(blotches(rng, size, 6), 0, 1) * rng.uniform(0, 25)
    page = page - ghost[..., None] * np.array([0.7, 0.6, 0.3])
    if rng.random() < 0.5:
        lines = ruled_lines(size, rng, spacing, squared=rng.random() < 0.6)
        page = page * (1 - 0.5 * lines[..., None]) + 0.5 * lines[..., None] * rng.uniform(120, 180)
    return page


def dark_board(rng: Rng, size: Size) -> np.ndarray:
    """A blackboard (black, green or grey) with the haze of chalk wiped off."""
    board = choose(BOARDS, rng) + rng.uniform(-6, 6)
    haze = (blotches(rng, size, 4) + 1) * rng.uniform(3, 12)
    return paper(rng, size, board, texture=rng.uniform(2, 5)) + haze[..., None]


def glare(rng: Rng, size: Size, spots: int) -> np.ndarray:
    """Reflections of lamps and windows on a glossy surface: elongated bright blobs, in [0, 0.8]
    (1 would be white): ink under the brightest core fades but stays readable."""
    y, x = coordinates(size)
    light = np.zeros((size[1], size[0]), np.float32)
    for _ in range(spots):
        cx, cy = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        long, short = rng.uniform(0.08, 0.35) * max(size), rng.uniform(0.03, 0.12) * min(size)
        angle = rng.uniform(0, np.pi)
        u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
        v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        light += rng.uniform(0.7, 1.6) * np.exp(-0.5 * ((u / long) ** 2 + (v / short) ** 2))
    return np.clip(light, 0, 0.8)


def with_glare(pixels: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Screen the reflection over the picture: it brightens everything, ink included."""
    return pixels + (255 - pixels) * light[..., None]


def shadow(rng: Rng, size: Size) -> np.ndarray:
    """A hand's or a phone's shadow: a soft-edged region, multiplicative, darkest 0.4-0.8."""
    y, x = coordinates(size)
    angle = rng.uniform(0, 2 * np.pi)
    across = (x - size[0] / 2) * np.cos(angle) + (y - size[1] / 2) * np.sin(angle)
    edge = rng.uniform(-0.3, 0.3) * max(size)
    softness = rng.uniform(0.02, 0.15) * max(size)
    inside = 1 / (1 + np.exp(-(across - edge) / softness))
    return 1 - rng.uniform(0.2, 0.6) * inside


def photograph(pixels: np.ndarray, rng: Rng, quality: tuple[int, int] = (55, 90)) -> bytes:
    """A phone's picture of the scene: uneven light and vignette, slight blur, sensor noise,
    JPEG. Returns the file's bytes."""
    size = (pixels.shape[1], pixels.shape[0])
    light = lighting(rng, size, rng.uniform(0.03, 0.2), vignette=rng.uniform(0, 0.25))
    blurred = to_image(pixels * light[..., None]).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2))
    )
    noise = rng.normal(0, rng.uniform(1, 3.5), (size[1], size[0], 1)).astype(np.float32)
    data, _ = jpeg(to_image(np.asarray(blurred, np.float32) + noise), rng, *quality)
    return data
