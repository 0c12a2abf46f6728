"""Decode uploaded digit pictures and turn them into MNIST-style rows: pure functions on arrays.

MNIST digits are white on black, fitted in a 20x20 box (aspect kept) and centred by centre of
mass in 28x28. Uploads are anything but: photos, scans, transparent canvas strokes, chalk on a
board. The steps, each a function: decode (EXIF, first frame, bomb guard) -> find a small
digit in a large frame and crop it at full resolution -> take the glare off -> ink map (distance
from the background colour, so any polarity or ink colour works; transparency composited
first; what is lighter than a light page is not ink) -> flatten uneven lighting -> remove ruled
and grid lines -> contrast stretch -> drop specks parted from the digit -> crop to the ink ->
thin thick strokes -> scale to 20 px -> centre by mass in 28x28.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import numpy as np
from PIL import (  # the plugins of the documented formats: `formats=` loads no others
    BmpImagePlugin,  # noqa: F401
    GifImagePlugin,  # noqa: F401
    Image,
    ImageOps,
    JpegImagePlugin,  # noqa: F401  (opens phones' multi-picture MPO files too)
    PngImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    WebPImagePlugin,  # noqa: F401
)

WORK_SIZE = 256  # longer side of the working image: enough detail, bounded cost
BACKGROUND_SIZE = 32  # shorter side of the grid the lighting is estimated on
BOX, CANVAS = 20, 28


class ImageError(ValueError):
    """The file cannot be used as a digit image; the message names what is wrong."""


class NotAnImage(ImageError):
    pass


class ImageTooLarge(ImageError):
    pass


class NoDigit(ImageError):
    pass


# The documented formats, and only these are tried: Pillow would otherwise also open DDS, ICO,
# PCX, SGI, TGA, EPS (through Ghostscript) and more, each a decoder an upload could aim at.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """The image's header read, its declared size checked; no pixel decoded yet."""
    if not data:
        raise NotAnImage("the file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"the declared size is more than {max_pixels} pixels") from None
    except Exception:  # Pillow's plugins raise OSError, ValueError, SyntaxError, EOFError...
        raise NotAnImage("not a readable image (PNG, JPEG, WebP, BMP, GIF or TIFF)") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"{width}x{height} pixels is more than {max_pixels}")
    if width == 0 or height == 0:
        raise ImageError("the image has no pixels")
    return image


def declared_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    return open_image(data, max_pixels).size


def decode(data: bytes, max_pixels: int, cover: int | None = WORK_SIZE) -> Image.Image:
    """Open, check the declared size *before* decoding pixels, apply EXIF, take frame one.

    A JPEG is decoded at the smallest scale whose sides still cover `cover` (None: full size)."""
    image = open_image(data, max_pixels)
    if cover and image.format in ("JPEG", "MPO"):  # (MPO: phones' multi-picture JPEGs) decode
        image.draft(None, (cover, cover))  # at 1/2, 1/4 or 1/8 scale if it covers the work size
    try:
        image.seek(0)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # a copy of every upload, otherwise
        return image
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageError(f"the image data is truncated or corrupt ({error})") from None


def to_rgba_array(image: Image.Image) -> np.ndarray:
    """(H, W, 4) float32 in [0, 1], any mode (16-bit, CMYK and palettes included)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if pixels.max() > 255 else 255.0
        gray = np.clip(pixels / scale, 0, 1)
        return np.dstack([gray, gray, gray, np.ones_like(gray)])
    if image.mode == "F":  # float pixels of any range: in float64, so +-3e38 cannot overflow
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageError("its pixel values are not finite numbers (NaN or infinity)")
        gray = ((values - values.min()) / max(float(np.ptp(values)), 1e-6)).astype(np.float32)
        return np.dstack([gray, gray, gray, np.ones_like(gray)])
    return np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0


def shrink(image: Image.Image, longest: int = WORK_SIZE) -> Image.Image:
    """Downscale (area-averaging) so the longer side is at most `longest`."""
    scale = longest / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def picture_pixels(image: Image.Image) -> np.ndarray:
    """(H, W) grey or (H, W, 3) colour float32 in [0, 1], transparency flattened.

    Grey and RGB pictures, most uploads, skip the RGBA detour (and grey ones keep one channel,
    a third of the work: its ink map is the colour one's)."""
    if image.mode in ("L", "RGB"):
        return np.asarray(image, dtype=np.float32) * np.float32(1 / 255)
    return composite_alpha(to_rgba_array(image))


def composite_alpha(rgba: np.ndarray) -> np.ndarray:
    """Flatten transparency onto the background that contrasts with the opaque strokes.

    A drawing app's transparent PNG with dark strokes is dark-on-light once flattened; light
    strokes go onto black. Opaque images pass through.
    """
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    if alpha.min() > 0.99:
        return rgb
    opaque = alpha > 0.5
    stroke_level = float(rgb[opaque].mean()) if opaque.any() else 0.0
    background = 1.0 if stroke_level < 0.5 else 0.0
    flat = np.empty(rgb.shape, dtype=np.float32)
    for channel in range(3):  # plane by plane: numpy is slow on a last axis of 3
        flat[..., channel] = rgb[..., channel] * alpha + background * (1 - alpha)
    return flat


def border_color(pixels: np.ndarray) -> np.ndarray:
    """The background colour (or grey level): the median of the outermost pixels.

    The median by one sort: np.median's own machinery was a visible share of a 28x28
    upload's time."""
    edges = np.sort(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0)
    middle = len(edges) // 2
    if len(edges) % 2:
        return edges[middle]
    return (edges[middle - 1] + edges[middle]) / 2


def ink_map(pixels: np.ndarray) -> np.ndarray:
    """How far each pixel is from the background colour: ink of any colour and polarity.

    `pixels` is (H, W, 3) colour or (H, W) grey; both give a distance in [0, 1]."""
    background = border_color(pixels)
    if pixels.ndim == 2:
        return np.abs(pixels - background)
    squares = np.zeros(pixels.shape[:2], dtype=np.float32)
    for channel in range(3):  # plane by plane: faster than arithmetic on the (H, W, 3) block
        offset = pixels[..., channel] - background[channel]
        squares += offset * offset
    return np.sqrt(squares) * np.float32(1 / np.sqrt(3))


def flatten_background(ink: np.ndarray) -> np.ndarray:
    """Subtract a smooth background estimate (uneven lighting, paper texture, vignettes).

    The estimate is a grey-level opening (a minimum filter wider than a stroke removes it)
    followed by a blur. The window is half the shorter side: marker strokes and filled loops
    outgrow a quarter, and were hollowed out. Lighting is smooth enough for either.
    """
    factor = max(1, min(ink.shape) // BACKGROUND_SIZE)
    small = block_min(ink, factor)  # lighting is smooth: estimate it on a coarse grid
    size = max(3, (min(small.shape) // 2) | 1)
    background = mean_filter(max_filter(min_filter(small, size), size), size)
    if factor > 1:
        height, width = ink.shape
        background = np.asarray(
            Image.fromarray(background, mode="F").resize((width, height), Image.Resampling.BILINEAR)
        )
    return np.clip(ink - background, 0, None)


GLARE_GRID = 64  # shorter side of the grid a light page's brightness is estimated on
GLARE_WINDOW = 7  # in grid cells: wider than a marker stroke, narrower than a lamp's reflection


def luminance(pixels: np.ndarray) -> np.ndarray:
    """(H, W) brightness of grey or colour pixels (Rec. 601 weights)."""
    if pixels.ndim == 2:
        return pixels
    return pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114


def remove_glare(pixels: np.ndarray) -> np.ndarray:
    """Take lamp and window reflections off a light page (whiteboards, glossy paper).

    A reflection screens the scene: each channel x becomes x + (1 - x) L for the light L it
    adds, so the page turns white and the ink under it fades. L is read from the page's local
    brightness where it is brighter than the page's typical brightness, and divided out: the
    blob is no longer something to read as ink, and the ink under it comes back. Dark boards and
    pages without a bright patch pass through unchanged."""
    page = page_brightness(luminance(pixels))
    (typical,) = order_statistics(page, (0.5,))
    if typical < 0.5 or float(page.max()) < typical + GLARE_STEP:
        return pixels
    brighter = page - typical
    onset = np.clip(brighter / GLARE_STEP - 1, 0, 1)  # 0 up to one step, all from two on
    light = np.clip(onset * brighter / max(1 - typical, 1e-6), 0, 0.9)
    height, width = pixels.shape[:2]
    light = np.asarray(
        Image.fromarray(light, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    )
    gain = 1 / (1 - light)
    if pixels.ndim == 2:
        return np.clip((pixels - light) * gain, 0, 1)
    restored = np.empty_like(pixels)
    for channel in range(3):  # plane by plane: numpy is slow on a last axis of 3
        restored[..., channel] = np.clip((pixels[..., channel] - light) * gain, 0, 1)
    return restored


GLARE_STEP = 0.04  # brighter than the page's median by less: lighting and vignettes, not glare


def page_brightness(lum: np.ndarray) -> np.ndarray:
    """A light page's brightness on a coarse grid (about GLARE_GRID cells on the shorter side):
    a closing (a maximum filter wider than a stroke fills it with the page around it),
    smoothed."""
    small = block_max(lum, max(1, min(lum.shape) // GLARE_GRID))
    size = min(GLARE_WINDOW, (min(small.shape) // 2) | 1)
    return mean_filter(min_filter(max_filter(small, size), size), 3)


def ink_of_its_polarity(pixels: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """Only what deviates from the background the way the ink does is ink: on a light page,
    dark writing is; a brighter patch (a reflection, a lit spot) is not. The ink's way is that of
    its strongest pixels."""
    background = border_color(pixels)
    signed = luminance(pixels) - (background if pixels.ndim == 2 else luminance(background))
    (strong,) = order_statistics(ink[::3, ::3], (0.995,))  # a sample: the order is enough
    (darker,) = order_statistics(signed[ink >= strong], (0.5,))
    if darker < 0:
        return np.where(signed <= 0, ink, 0).astype(np.float32)
    return np.where(signed >= 0, ink, 0).astype(np.float32)


def block_min(values: np.ndarray, factor: int) -> np.ndarray:
    """Each factor x factor block's minimum (a ragged edge is dropped): the opening's first
    step, on 1/factor^2 of the pixels. Strided minima: far faster than a reshaped min."""
    return block_pick(values, factor, np.minimum)


def block_max(values: np.ndarray, factor: int) -> np.ndarray:
    """Each factor x factor block's maximum (a ragged edge is dropped)."""
    return block_pick(values, factor, np.maximum)


def block_pick(values: np.ndarray, factor: int, pick: np.ufunc) -> np.ndarray:
    if factor == 1:
        return values
    height, width = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
    trimmed = values[:height, :width]
    rows = functools.reduce(pick, (trimmed[k::factor] for k in range(factor)))
    return functools.reduce(pick, (rows[:, k::factor] for k in range(factor)))


def min_filter(values: np.ndarray, size: int) -> np.ndarray:
    """Each pixel's minimum over the size x size window around it (edges padded)."""
    return separable(values, size, functools.partial(running_pick, pick=np.minimum))


def max_filter(values: np.ndarray, size: int) -> np.ndarray:
    """Each pixel's maximum over the size x size window around it (edges padded)."""
    return separable(values, size, functools.partial(running_pick, pick=np.maximum))


def mean_filter(values: np.ndarray, size: int) -> np.ndarray:
    """Each pixel's mean over the size x size window around it (edges padded)."""
    return separable(values, size, running_mean)


Filter1D = Callable[[np.ndarray, int, int], np.ndarray]  # (padded, size, axis) -> filtered


def separable(values: np.ndarray, size: int, filter_1d: Filter1D) -> np.ndarray:
    """Apply a 1-D window filter along rows, then columns, each on an edge-padded copy."""
    out = values
    for axis in (0, 1):
        out = along_axis(out, size, axis, filter_1d)
    return out.astype(np.float32, copy=False)


def along_axis(values: np.ndarray, size: int, axis: int, filter_1d: Filter1D) -> np.ndarray:
    """A 1-D window filter along one axis, on an edge-padded copy: the same shape back."""
    half = size // 2
    length = values.shape[axis]
    first, last = along(values, 0, 1, axis), along(values, length - 1, length, axis)
    padded = np.concatenate(  # np.pad's generality cost more than the filters on small images
        [np.repeat(first, half, axis), values, np.repeat(last, half, axis)], axis=axis
    )
    return filter_1d(padded, size, axis)


def along(values: np.ndarray, start: int, stop: int, axis: int) -> np.ndarray:
    return values[(slice(None),) * axis + (slice(start, stop),)]


def running_pick(padded: np.ndarray, size: int, axis: int, pick: np.ufunc) -> np.ndarray:
    """Running min or max (`pick`: np.minimum or np.maximum) of `size` along `axis`, by doubling
    spans: about log2(size) array operations rather than `size`."""
    span, picked = 1, padded  # picked[i] = pick(padded[i : i + span])
    while span * 2 <= size:
        length = picked.shape[axis] - span
        picked = pick(along(picked, 0, length, axis), along(picked, span, span + length, axis))
        span *= 2
    count = padded.shape[axis] - size + 1  # two overlapping spans cover each window
    return pick(
        along(picked, 0, count, axis), along(picked, size - span, size - span + count, axis)
    )


MIN_1D: Filter1D = functools.partial(running_pick, pick=np.minimum)
MAX_1D: Filter1D = functools.partial(running_pick, pick=np.maximum)


def running_mean(padded: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Running mean of `size` along `axis`: a sum of `size` shifted views (windows are small)."""
    count = padded.shape[axis] - size + 1
    total = along(padded, 0, count, axis).astype(np.float32)
    for start in range(1, size):
        total += along(padded, start, start + count, axis)
    return total * np.float32(1 / size)


RULING_MAX = 7  # widest window (px at the working size) lines are told from strokes with


def remove_ruling(ink: np.ndarray) -> np.ndarray:
    """Take out ruled and grid lines: long straight lines, much thinner than the strokes.

    An opening across the lines (a window wider than a line, narrower than a stroke) removes
    every thin structure lying along them; what it removes is taken out only on the rows (or
    columns) where it runs across much of the picture, so a digit's own strokes and the pixels
    where they cross a line stay. Near-horizontal lines first, then near-vertical ones."""
    window = line_window(ink)
    if window < 3:
        return ink
    for axis in (0, 1):  # axis 0: an opening down the columns takes horizontal lines
        thin = ink - along_axis(along_axis(ink, window, axis, MIN_1D), window, axis, MAX_1D)
        ink = ink - thin * long_line_mask(thin, axis)
    return ink


def line_window(ink: np.ndarray) -> int:
    """The opening's window: an odd width below the strokes' (their width measured on the strong
    ink, which lines thin out, so the window errs small); 1 when strokes are too thin."""
    (high,) = order_statistics(ink[::3, ::3], (0.995,))
    width = pen_width(ink > 0.5 * high)
    return min(RULING_MAX, int(0.47 * width) // 2 * 2 + 1)


def long_line_mask(thin: np.ndarray, axis: int) -> np.ndarray:
    """1 on the rows (axis 0) or columns (axis 1) where thin structures run across most of the
    picture, and a couple either side (a page is never square to the camera), 0
    elsewhere; broadcastable against the picture."""
    across = 1 - axis
    (high,) = order_statistics(thin[::3, ::3], (0.999,))
    run = along_axis(thin, 9, across, running_mean) > max(0.3 * high, 0.02)
    near = along_axis(run.astype(np.float32), 9, axis, MAX_1D)  # drift of a slightly tilted line
    lines = near.mean(axis=across, keepdims=True) > LINE_SPAN
    return along_axis(lines.astype(np.float32), 5, axis, MAX_1D)


LINE_SPAN = 0.6  # a digit's own thin stroke rarely runs across more of the picture


def stretch(ink: np.ndarray) -> np.ndarray:
    """Map noise to 0 and solid ink to 1: thresholds from the ink's own distribution."""
    high, middle = order_statistics(ink, (0.995, 0.5))
    if high < 0.04:
        raise NoDigit("no digit found")
    low = max(middle * 2, high * 0.25)
    return np.clip((ink - low) / max(high * 0.8 - low, 1e-6), 0, 1)


def order_statistics(values: np.ndarray, quantiles: tuple[float, ...]) -> list[float]:
    """The values at these quantiles (nearest rank): one partition, where each np.percentile
    call sorted on its own."""
    flat = values.ravel()
    ranks = [min(round(q * (flat.size - 1)), flat.size - 1) for q in quantiles]
    ordered = np.partition(flat, sorted(set(ranks)))
    return [float(ordered[rank]) for rank in ranks]


INK_LEVEL = 0.2  # stretched ink above this is the digit; below it, edge tails and noise


def ink_rows_cols(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rows and of the columns that hold ink."""
    return np.flatnonzero(ink.max(axis=1) > INK_LEVEL), np.flatnonzero(ink.max(axis=0) > INK_LEVEL)


def ink_extent(ink: np.ndarray) -> int:
    """The longer side, in pixels, of the ink's bounding box."""
    rows, cols = ink_rows_cols(ink)
    if len(rows) == 0:
        raise NoDigit("no digit found")
    return int(max(rows[-1] - rows[0], cols[-1] - cols[0])) + 1


SPECK_GAP = 0.04  # of the picture's longer side: blank rows or columns that part a speck off
SPECK_MASS = 0.05  # of the ink: a parted-off band holding less is a speck, not the digit's


def drop_specks(ink: np.ndarray) -> np.ndarray:
    """Blank out bands of rows, then of columns, that blank space parts from the rest and that
    hold under 5% of the ink: a board's blotch, a grid crossing or dust far from the digit
    would otherwise set the crop, and the digit shrinks inside it."""
    gap = max(2, round(SPECK_GAP * max(ink.shape)))
    for axis in (0, 1):
        mass = np.where(ink > INK_LEVEL, ink, 0).sum(axis=1 - axis)
        span = main_span(mass, gap)
        if span is not None:
            ink = ink.copy()
            outside = np.ones(len(mass), bool)
            outside[span[0] : span[1] + 1] = False
            if axis == 0:
                ink[outside] = 0
            else:
                ink[:, outside] = 0
    return ink


def main_span(mass: np.ndarray, gap: int) -> tuple[int, int] | None:
    """(first, last) index of the bands of `mass` > 0, split where `gap` or more zeros part
    them, that hold SPECK_MASS of the total or more; None when there is no ink."""
    occupied = np.flatnonzero(mass > 0)
    if len(occupied) == 0:
        return None
    breaks = np.flatnonzero(np.diff(occupied) > gap)
    starts = np.r_[occupied[0], occupied[breaks + 1]]
    ends = np.r_[occupied[breaks], occupied[-1]]
    band_mass = np.array([mass[a : b + 1].sum() for a, b in zip(starts, ends, strict=True)])
    kept = band_mass >= SPECK_MASS * band_mass.sum()
    return int(starts[kept].min()), int(ends[kept].max())


def crop_to_ink(ink: np.ndarray, margin: float = 0.04) -> np.ndarray:
    """The ink's bounding box plus a small margin, so antialiased edge tails are kept."""
    rows, cols = ink_rows_cols(ink)
    pad = round(margin * ink_extent(ink))
    top, bottom = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, ink.shape[0])
    left, right = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, ink.shape[1])
    return ink[top:bottom, left:right]


THICK = 0.2  # strokes wider than this share of the ink's extent close loops at 20 px
PEN = 0.16  # what such strokes are thinned to: MNIST's typical pen relative to its digits


def thin_thick_strokes(ink: np.ndarray) -> np.ndarray:
    """Thin felt-pen and brush strokes toward MNIST's pen, before the 20 px fit: at that size a
    stroke a quarter of the digit wide fills the loops of an 8, a 9 or a 6. Eroded by the
    excess width (a minimum filter), then cropped again; MNIST-like pens are left alone."""
    extent = ink_extent(ink)
    width = pen_width(ink > 0.5)
    if width <= THICK * extent:
        return ink
    size = int(width - PEN * extent) // 2 * 2 + 1
    if size < 3:
        return ink
    return crop_to_ink(min_filter(ink, size))


def pen_width(mask: np.ndarray) -> float:
    """Mean stroke width of a mask in pixels: 2 * area / outline, since a ribbon's area is its
    length times its width and its outline twice its length. The outline is counted in pixel
    steps, which run 4/pi of a curve's length on average: divided out."""
    padded = np.pad(mask, 1)
    outline = np.count_nonzero(np.diff(padded, axis=0)) + np.count_nonzero(np.diff(padded, axis=1))
    return 2 * np.count_nonzero(padded) / max(outline, 1) * (4 / np.pi)


def fit_box(ink: np.ndarray, box: int = BOX) -> np.ndarray:
    """Scale so the ink's longer side is `box` pixels (the crop's margin comes on top, as in
    MNIST), aspect kept, antialiased; thin strokes are thickened first so they survive the
    downscale, and the result is renormalised."""
    height, width = ink.shape
    scale = box / ink_extent(ink)
    stroke = max(1, round(1.2 / scale))  # about one target pixel of stroke, in source pixels
    if stroke > 1 and stroke_width(ink) < stroke * 2:
        ink = max_filter(ink, stroke | 1)
    image = Image.fromarray(ink.astype(np.float32), mode="F")
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    peak = float(np.percentile(small, 99))
    return np.clip(small / max(peak, 1e-6), 0, 1)


def stroke_width(ink: np.ndarray) -> float:
    """Typical stroke thickness: ink area over the length of its horizontal/vertical runs.

    Measured on a lightly smoothed map: chalk's grain would otherwise count as many thin
    strokes, and the grainy digit would be thickened until its loops close."""
    mask = mean_filter(ink, 3) > 0.5
    area = mask.sum()
    edges = (
        np.abs(np.diff(mask.astype(np.int8), axis=1)).sum()
        + np.abs(np.diff(mask.astype(np.int8), axis=0)).sum()
    )
    return float(2 * area / max(edges, 1) * 2)


def center_by_mass(digit: np.ndarray, canvas: int = CANVAS) -> np.ndarray:
    """Place `digit` in a canvas x canvas image with its centre of mass at the centre.

    The centre is pixel index canvas / 2 (14, 14), where MNIST's digits have theirs: half a
    pixel off in both axes cost model v1 1.5 points on clean digits and 1 on uploads."""
    out = np.zeros((canvas, canvas), dtype=np.float32)
    total = digit.sum()
    rows, cols = np.indices(digit.shape)
    cy, cx = (rows * digit).sum() / total, (cols * digit).sum() / total
    top, left = round(canvas / 2 - cy), round(canvas / 2 - cx)
    top = min(max(top, 0), canvas - digit.shape[0])
    left = min(max(left, 0), canvas - digit.shape[1])
    out[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return out


def digit_from_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """An uploaded file -> the (28, 28) row the model sees; a small digit in a large JPEG is
    cropped from the file decoded again at full size."""
    image = decode(data, max_pixels)
    return preprocess_digit(image, lambda: decode(data, max_pixels, cover=None))


def preprocess_digit(
    image: Image.Image, full_size: Callable[[], Image.Image] | None = None
) -> np.ndarray:
    """Any picture of one digit -> (28, 28) float32 in [0, 1], white on black, MNIST-style.

    `full_size` gives the picture at its full resolution when `image` was decoded smaller (a
    JPEG's draft); a small digit in a large frame is cropped from it."""
    if image.size == (CANVAS, CANVAS):
        return model_sized_digit(image)
    work = shrink(image)
    pixels = picture_pixels(work)
    flat = flatten_background(picture_ink(pixels))
    box = small_ink_box(ink_map(pixels))
    if box is not None:
        source = full_size() if full_size is not None else image
        crop = source.crop(scaled_box(box, work.size, source.size))
        flat = flatten_background(picture_ink(picture_pixels(shrink(crop))))
    ink = drop_specks(stretch(remove_ruling(flat)))
    return center_by_mass(fit_box(thin_thick_strokes(crop_to_ink(ink))))


def picture_ink(pixels: np.ndarray) -> np.ndarray:
    """The ink map of a picture with its glare taken off, of the ink's own polarity."""
    pixels = remove_glare(pixels)
    return ink_of_its_polarity(pixels, ink_map(pixels))


DETAIL = 15  # px at the working size: writing finer than this is detail, lighting is not
SMALL = 0.2  # a digit whose detail spans less of the picture's longer side than this is small


Box = tuple[int, int, int, int]  # (left, top, right, bottom), Pillow's order


def small_ink_box(ink: np.ndarray) -> Box | None:
    """Where the writing is when it is a small digit in a large frame (a whole page photographed
    for one digit), with room around it; None otherwise.

    Shrunk to the working size such a digit is a few pixels of faint strokes, under the
    contrast stretch's percentiles and beside the page's shadows. It is found as the fine
    detail (a top-hat: the ink less its opening, which keeps lighting and shadows out) that
    gathers in one small place, away from any wide stroke (the thin tail of a bold digit is no
    small digit)."""
    wide = max_filter(min_filter(ink, DETAIL), DETAIL)
    detail = ink - wide
    peak = float(detail.max())
    if peak < 0.05:
        return None
    rows = np.flatnonzero(detail.max(axis=1) > 0.4 * peak)
    cols = np.flatnonzero(detail.max(axis=0) > 0.4 * peak)
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    if extent > SMALL * max(ink.shape):
        return None
    pad = extent + 8
    top, bottom = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, ink.shape[0])
    left, right = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, ink.shape[1])
    faint = detail > 0.25 * peak
    if faint[top:bottom, left:right].sum() < 0.7 * faint.sum():
        return None  # detail elsewhere too: writing larger than this spot
    if float(np.ptp(wide[top:bottom, left:right])) > 0.75 * peak:
        return None  # the thin end of a wide stroke, not a small digit
    return int(left), int(top), int(right), int(bottom)


def scaled_box(box: Box, size: tuple[int, int], to: tuple[int, int]) -> Box:
    """`box` in a picture of `size` as the same region of the picture at size `to`."""
    sx, sy = to[0] / size[0], to[1] / size[1]
    left, top, right, bottom = box
    return (
        int(left * sx),
        int(top * sy),
        min(to[0], round(right * sx)),
        min(to[1], round(bottom * sy)),
    )


def model_sized_digit(image: Image.Image) -> np.ndarray:
    """A 28x28 upload is already in MNIST's geometry: only its polarity and range are made
    MNIST's (white ink on black, peak 1). Re-cropping and re-scaling such a digit cost accuracy
    (MNIST's test digits sent as 28x28 PNGs score as the raw test set this way, lower through
    the full steps; README, Digit images) and time."""
    ink = ink_map(picture_pixels(image))
    peak = float(ink.max())
    if peak < 0.04:
        raise NoDigit("no digit found")
    return (ink / peak).astype(np.float32)
