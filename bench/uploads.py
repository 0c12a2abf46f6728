"""Realistic image uploads of handwritten digits, rendered from MNIST *test* digits.

    python -m bench.uploads --data-dir ../shared/data --out /tmp/uploads [--per-style 100]

Users send photos, scans and canvas exports, not centred 28x28 white-on-black tensors. Each style
renders one test digit the way such an upload looks (paper, lighting, ink colour, polarity,
transparency, JPEG artefacts), so the service's image preprocessing can be scored against the
digit's label. Only the test split is read: a model has seen every training digit.

Writes OUT/<style>_<n>.<ext> and OUT/manifest.json, a list of {file, label, style, index} with
index into the test split. Files named like ours that the new manifest lacks are removed.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

Rng = np.random.Generator
Size = tuple[int, int]  # (width, height), Pillow's order
Renderer = Callable[[np.ndarray, Rng], tuple[bytes, str]]
LANCZOS, BICUBIC = Image.Resampling.LANCZOS, Image.Resampling.BICUBIC


# --- the digit: scale, pen width, edges, rotation, placement ------------------------------------


def canvas_size(rng: Rng, lo: int, hi: int, square: float = 0.25) -> Size:
    """Sides in [lo, hi], aspect ratio within 1.5: uploads are seldom MNIST's square."""
    height = int(rng.integers(lo, hi + 1))
    if rng.random() < square:
        return height, height
    return int(np.clip(round(height * rng.uniform(1 / 1.5, 1.5)), lo, hi)), height


def stroke_width(digit: np.ndarray) -> float:
    """Mean pen width in source pixels: 2 * area / outline of the inked pixels, since a ribbon's
    area is length * width and its outline twice its length. Grid outlines run long: errs low."""
    ink = np.pad(digit > 127, 1)
    outline = np.count_nonzero(np.diff(ink, axis=0)) + np.count_nonzero(np.diff(ink, axis=1))
    return 2 * np.count_nonzero(ink) / max(outline, 1)


def restroke(mask: Image.Image, change_px: float) -> Image.Image:
    """Pens differ from MNIST's (~2.5 source px): dilate to thicken, erode to thin."""
    size = 2 * round(abs(change_px) / 2) + 1
    if size < 3:
        return mask
    rank = ImageFilter.MaxFilter(size) if change_px > 0 else ImageFilter.MinFilter(size)
    return mask.filter(rank)


def sharpen(mask: Image.Image, gain: float, level: float = 0.4) -> Image.Image:
    """Upscaled MNIST edges are one source pixel wide; pens and canvases draw crisper ones.

    Contrast is stretched about `level`, so 0 stays 0 and 1 stays 1."""
    if gain <= 1:
        return mask
    a = np.asarray(mask, np.float32) / 255
    return Image.fromarray(
        np.rint(np.clip((a - level) * gain + level, 0, 1) * 255).astype(np.uint8)
    )


def fit(img: Image.Image, size: Size, margin: float = 0.95) -> Image.Image:
    """Rotation can push a tall digit past the canvas: shrink it back inside."""
    factor = min(1.0, margin * size[0] / img.width, margin * size[1] / img.height)
    if factor == 1:
        return img
    return img.resize((max(1, int(img.width * factor)), max(1, int(img.height * factor))), LANCZOS)


def place(ink: np.ndarray, size: Size, rng: Rng) -> np.ndarray:
    """Anywhere fully inside the canvas: people rarely centre a digit the way MNIST does."""
    (width, height), (h, w) = size, ink.shape
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    mask = np.zeros((height, width), np.float32)
    mask[y : y + h, x : x + w] = ink
    return mask


def digit_mask(
    digit: np.ndarray,
    rng: Rng,
    size: Size,
    *,
    height: tuple[float, float] = (0.4, 0.8),
    stroke: tuple[float, float] = (-0.8, 0.5),
    edge_px: float | None = 1.5,
) -> np.ndarray:
    """Ink coverage in [0, 1] over the canvas.

    The digit's box is smoothly upscaled to `height` of the canvas (and blurred a little, or the
    28 px grid shows as wobbly edges), its pen changed by `stroke` source pixels (within limits
    set by its own width), its edges sharpened to about `edge_px` (None keeps MNIST's softness),
    rotated by up to 12 degrees and placed off-centre."""
    ys, xs = np.nonzero(digit)
    rows, cols = int(ys.max() + 1 - ys.min()), int(xs.max() + 1 - xs.min())
    crop = np.pad(digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], 4)  # filter tails
    scale = min(rng.uniform(*height) * size[1] / rows, 0.9 * size[0] / cols)
    shape = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    big = Image.fromarray(crop).resize(shape, LANCZOS).filter(ImageFilter.GaussianBlur(scale / 3))
    big = sharpen(big, 1.05, level=1.0)  # zero the faint tails, or dilation squares them up
    width = stroke_width(digit)  # keep thin digits unbroken and thick ones' loops open
    change = np.clip(rng.uniform(*stroke), min(0, 1 - width), max(0, 3.2 - width))
    big = restroke(big, change * scale)
    if edge_px is not None:
        big = sharpen(big, scale / edge_px)
    big = big.rotate(rng.uniform(-12, 12), BICUBIC, expand=True)
    big = fit(big.crop(big.getbbox()), size)
    return place(np.asarray(big, np.float32) / 255, size, rng)


# --- paper, light and encoding ------------------------------------------------------------------


def blotches(rng: Rng, size: Size, cells: int) -> np.ndarray:
    """Smooth noise in about [-1, 1] with `cells` bumps a side: fibre clouds, smudges, pressure."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize(size, BICUBIC))


def paper(rng: Rng, size: Size, tone: np.ndarray, texture: float) -> np.ndarray:
    """A flat `tone` (RGB) roughened by about +-`texture` levels at coarse, fine and pixel scale."""
    grain = rng.normal(0, 0.35, (size[1], size[0])).astype(np.float32)
    field = 0.5 * blotches(rng, size, 5) + 0.3 * blotches(rng, size, 40) + grain
    return np.asarray(tone, np.float32) + texture * field[..., None]


def pressure(rng: Rng, size: Size, amount: float) -> np.ndarray:
    """Ink density varies along a stroke with pen pressure and ink flow."""
    return 1 - amount * (0.5 + 0.5 * blotches(rng, size, 8))


def lighting(rng: Rng, size: Size, falloff: float, vignette: float = 0.0) -> np.ndarray:
    """Multiplicative light, about 1 - falloff - vignette at its darkest: a ramp in a random
    direction and an off-centre radial darkening, as from a desk lamp or a phone's lens."""
    y, x = np.mgrid[-1 : 1 : size[1] * 1j, -1 : 1 : size[0] * 1j].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (x * np.cos(angle) + y * np.sin(angle)) / np.sqrt(2)
    light = 1 - falloff * (ramp + 1) / 2
    cx, cy = rng.uniform(-0.3, 0.3, 2)
    radius2 = (x - cx) ** 2 + (y - cy) ** 2
    return light * (1 - vignette * radius2 / radius2.max())


def apply_ink(page: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Cover the page with `colour` (RGB) in proportion to the ink's coverage."""
    a = alpha[..., None]
    return page * (1 - a) + colour.astype(np.float32) * a


def to_image(pixels: np.ndarray) -> Image.Image:
    """Float levels to 8-bit L/RGB/RGBA, clipped like a sensor or a file format would."""
    return Image.fromarray(np.rint(np.clip(pixels, 0, 255)).astype(np.uint8))


def encode(img: Image.Image, fmt: str, **options: int | bool) -> tuple[bytes, str]:
    """The file's bytes and extension; no metadata, so equal seeds give equal bytes."""
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue(), {"JPEG": "jpg", "PNG": "png"}[fmt]


def jpeg(img: Image.Image, rng: Rng, lo: int, hi: int) -> tuple[bytes, str]:
    """JPEG at a random quality in [lo, hi]: phones, scanners and apps all pick their own."""
    return encode(img, "JPEG", quality=int(rng.integers(lo, hi + 1)))


# --- styles -------------------------------------------------------------------------------------


def render_scan(digit: np.ndarray, rng: Rng) -> tuple[bytes, str]:
    """Flatbed scan: dark ink on textured off-white paper, faint light falloff, RGB JPEG 60-95."""
    size = canvas_size(rng, 100, 450)
    white = rng.uniform(228, 250)
    tone = np.array([white, white - rng.uniform(0, 4), white - rng.uniform(2, 10)])
    page = paper(rng, size, tone, texture=rng.uniform(2, 6))
    alpha = digit_mask(digit, rng, size, edge_px=rng.uniform(1.5, 3))
    alpha *= rng.uniform(0.8, 0.95) * pressure(rng, size, 0.2)
    light = lighting(rng, size, rng.uniform(0.02, 0.08))
    pixels = apply_ink(page, alpha, np.full(3, rng.uniform(15, 60))) * light[..., None]
    return jpeg(to_image(pixels), rng, 60, 95)


def render_photo(digit: np.ndarray, rng: Rng) -> tuple[bytes, str]:
    """Phone photo of a sheet: grey-ish paper, lamp falloff and vignette, colour cast, slight
    blur, sensor noise, RGB JPEG 50-85 at 300-500 px."""
    size = canvas_size(rng, 300, 500)
    warmth, tint = rng.uniform(-1, 1), rng.uniform(-0.015, 0.015)
    cast = 1 + np.array([0.05 * warmth, tint, -0.07 * warmth])  # lamp/daylight white balance
    page = paper(rng, size, rng.uniform(170, 220) * cast, texture=rng.uniform(2, 5))
    alpha = digit_mask(digit, rng, size, stroke=(-0.7, 0.6), edge_px=2.0)
    alpha *= rng.uniform(0.8, 0.95) * pressure(rng, size, 0.15)
    light = lighting(rng, size, rng.uniform(0.08, 0.22), vignette=rng.uniform(0.1, 0.3))
    pixels = apply_ink(page, alpha, rng.uniform(20, 55) * cast) * light[..., None]
    blurred = to_image(pixels).filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4)))
    shape = (size[1], size[0])
    noise = rng.normal(0, rng.uniform(1.5, 4), (*shape, 1)) + rng.normal(0, 1.5, (*shape, 3))
    return jpeg(to_image(np.asarray(blurred, np.float32) + noise), rng, 50, 85)


BLUE_INKS = np.array([(25, 45, 150), (40, 75, 190), (20, 30, 110), (30, 60, 160)], np.float32)
OTHER_INKS = np.array([(175, 30, 40), (30, 110, 60), (95, 40, 150)], np.float32)


def render_blue_ink(digit: np.ndarray, rng: Rng) -> tuple[bytes, str]:
    """Ballpoint on white or cream paper: thin blue (sometimes red/green/violet) ink, often faint,
    RGB PNG (a cleaned-up scan) or JPEG."""
    size = canvas_size(rng, 100, 450)
    cream = rng.random() < 0.4
    tone = np.array([250, 245, 226] if cream else [252, 252, 250]) - rng.uniform(0, 6)
    as_png = rng.random() < 0.4
    page = paper(rng, size, tone, texture=rng.uniform(0.5, 1.5) if as_png else rng.uniform(1, 4))
    inks = BLUE_INKS if rng.random() < 0.75 else OTHER_INKS
    colour = inks[rng.integers(len(inks))] + rng.uniform(-10, 10, 3)
    alpha = digit_mask(digit, rng, size, stroke=(-1.0, -0.2), edge_px=1.2)
    alpha *= rng.uniform(0.5, 0.9) * pressure(rng, size, 0.25)
    light = lighting(rng, size, rng.uniform(0, 0.05))
    img = to_image(apply_ink(page, alpha, colour) * light[..., None])
    return encode(img, "PNG") if as_png else jpeg(img, rng, 70, 92)


def render_canvas(digit: np.ndarray, rng: Rng) -> tuple[bytes, str]:
    """Web canvas / drawing-app export: RGBA PNG, transparent (0, 0, 0, 0) background, opaque
    black or dark grey strokes, thin or thick, antialiased only in alpha."""
    size = canvas_size(rng, 200, 400, square=0.6)
    stroke = (0.3, 1.2) if rng.random() < 0.5 else (-1.0, -0.4)
    alpha = digit_mask(digit, rng, size, stroke=stroke, edge_px=1.0)
    grey = 0 if rng.random() < 0.6 else int(rng.integers(20, 70))
    rgba = np.zeros((size[1], size[0], 4), np.float32)
    rgba[..., :3] = np.where(alpha[..., None] > 0, grey, 0)
    rgba[..., 3] = alpha * 255
    return encode(to_image(rgba), "PNG", optimize=True)


def chalk(mask: np.ndarray, rng: Rng) -> np.ndarray:
    """Chalk skips over the board's pores, more so where it is pressed less: grains about 2 px
    across, solid-ish along a stroke's middle, ragged at its edges."""
    h, w = mask.shape
    small = rng.uniform(0, 1, (h // 2 + 1, w // 2 + 1)).astype(np.float32)
    pores = np.asarray(Image.fromarray(small).resize((w, h), BICUBIC))
    return np.clip((mask - 0.9 * pores) * 2.0, 0, 1)


BOARDS = np.array([(28, 28, 30), (34, 62, 46), (55, 58, 60)], np.float32)


def render_chalk(digit: np.ndarray, rng: Rng) -> tuple[bytes, str]:
    """Chalk on a blackboard: grainy light strokes on black, green or grey, eraser haze, JPEG."""
    size = canvas_size(rng, 100, 450)
    board = BOARDS[rng.integers(len(BOARDS))] + rng.uniform(-6, 6)
    haze = (blotches(rng, size, 4) + 1) * rng.uniform(3, 10)  # wiped-off chalk
    page = paper(rng, size, board, texture=rng.uniform(2, 5)) + haze[..., None]
    mask = digit_mask(digit, rng, size, stroke=(-0.3, 0.8), edge_px=4.0)
    alpha = chalk(mask, rng) * rng.uniform(0.8, 0.95)
    colour = np.array([rng.uniform(215, 245)] * 3) - [0, 0, rng.uniform(0, 15)]
    pixels = apply_ink(page, alpha, colour) * lighting(rng, size, rng.uniform(0, 0.15))[..., None]
    return jpeg(to_image(pixels), rng, 60, 90)


def render_clean_inverted(digit: np.ndarray, rng: Rng) -> tuple[bytes, str]:
    """The tidy case: a black digit on plain white, grayscale (L) PNG, nothing else wrong."""
    size = canvas_size(rng, 64, 450)
    alpha = digit_mask(digit, rng, size, edge_px=rng.uniform(1, 3))
    return encode(to_image(255 * (1 - alpha)), "PNG", optimize=True)


def render_white_on_black(digit: np.ndarray, rng: Rng) -> tuple[bytes, str]:
    """MNIST's own polarity and soft edges, but larger and off-centre: grayscale (L) PNG."""
    size = canvas_size(rng, 64, 400)
    alpha = digit_mask(digit, rng, size, stroke=(-0.3, 0.6), edge_px=None)
    return encode(to_image(255 * alpha), "PNG", optimize=True)


STYLES: dict[str, Renderer] = {
    "scan": render_scan,
    "photo": render_photo,
    "blue_ink": render_blue_ink,
    "canvas": render_canvas,
    "chalk": render_chalk,
    "clean_inverted": render_clean_inverted,
    "white_on_black": render_white_on_black,
}


# --- the set ------------------------------------------------------------------------------------


def load_test_digits(data_dir: Path, first: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `first` MNIST test digits (N x 28 x 28 uint8) and labels; never training ones."""
    from torchvision.datasets import MNIST  # slow import, needed only here

    test = MNIST(root=str(data_dir), train=False, download=False)
    return test.data.numpy()[:first], test.targets.numpy()[:first]


def generate(
    images: np.ndarray, labels: np.ndarray, out: Path, per_style: int, seed: int
) -> list[dict[str, str | int]]:
    """Render `per_style` seeded picks of `images` in every style into `out`; returns the manifest.

    Each image has its own generator from (seed, style, n): one can be re-rendered alone."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, str | int]] = []
    for style_no, (style, render) in enumerate(STYLES.items()):
        picks = np.random.default_rng([seed, style_no]).choice(
            len(images), size=per_style, replace=per_style > len(images)
        )
        for n, index in enumerate(picks.tolist()):
            data, ext = render(images[index], np.random.default_rng([seed, style_no, n]))
            name = f"{style}_{n:03d}.{ext}"
            (out / name).write_bytes(data)
            manifest.append(
                {"file": name, "label": int(labels[index]), "style": style, "index": index}
            )
    write_manifest(out, manifest, STYLES)
    return manifest


def write_manifest(
    out: Path, manifest: Sequence[Mapping[str, object]], prefixes: Iterable[str]
) -> None:
    """OUT/manifest.json; files named like a set's (<prefix>_<n>.<ext>) that it lacks are removed,
    so a smaller set written over a larger one leaves nothing behind."""
    written = {entry["file"] for entry in manifest}
    for stale in (p for prefix in prefixes for p in out.glob(f"{prefix}_[0-9]*.*")):
        if stale.name not in written:
            stale.unlink()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="holds MNIST/raw/t10k-*")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-style", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=None, help="use only the first K test digits")
    args = parser.parse_args(argv)
    images, labels = load_test_digits(args.data_dir, args.first)
    manifest = generate(images, labels, args.out, args.per_style, args.seed)
    print(f"{len(manifest)} uploads from {len(images)} test digits in {args.out}")


if __name__ == "__main__":
    main()
