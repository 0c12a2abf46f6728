"""On-the-fly augmentation of MNIST batches, so training digits look like preprocessed uploads.

`service.codecs.images` turns a photo, scan, canvas export or chalk board into a 28x28 row: the
ink is stretched to full contrast (strokes saturate, faint edges go), pens run from hairline to
marker, writers slant and turn their digits, chalk leaves holes, and the digit is cropped,
fitted into a 20 px box and centred by centre of mass. MNIST has little of that variety. Each
batch gets such changes on a random share of its rows, all as tensor operations on the whole
batch (no per-image loop), and cheaply: one resample does every geometric change and the
service's re-normalisation at once, and grain and noise come from fixed banks of patterns.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812

SIDE = 28
CENTRE = 14.0  # pixel index of MNIST's (and service.codecs.images') centre of mass, both axes
INK_LEVEL = 0.2  # of a row's peak: what counts as ink for its bounding box, as in the service
BANK = 512  # grain and noise patterns drawn once; each row takes one, chosen per batch


@dataclass(frozen=True)
class Augmentation:
    """How far each change goes; a share `keep` of every batch is left as MNIST has it."""

    keep: float = 0.5
    rotation_deg: float = 12.0
    slant: float = 0.3  # shear: x moves by up to this share of the height from the centre
    aspect: tuple[float, float] = (0.8, 1.15)  # width scale, before the fit
    scale: tuple[float, float] = (0.85, 1.15)  # of the 20 px box the digit is refitted into
    shift_px: float = 2.0  # of the centre of mass from the centre, per axis
    pen: tuple[float, float] = (0.0, 0.45)  # ink threshold after a blur: thicker .. thinner
    grain: float = 0.2  # share of rows with chalk-like holes (chalk, drying markers)
    noise_std: float = 0.03  # the most background noise a row gets
    box: float = 20.0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(N, 784) pixels in [0, 1] -> (N, 784) pixels in [0, 1], each row changed or kept."""
        x = images.reshape(-1, 1, SIDE, SIDE)
        draw = torch.rand(len(x), generator=generator, device=x.device)
        changed = (draw >= self.keep).nonzero().flatten()
        if len(changed) == 0:
            return images
        out = restroke(x[changed], generator, self.pen)
        out = add_grain(out, generator, self.grain)
        out = self.warp(out, generator)
        out = add_noise(out, generator, self.noise_std)
        return x.index_copy(0, changed, out).reshape(images.shape)

    def warp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Slant, aspect and turn, then the service's fit of the ink's longer side to the box
        and its centring by mass, with the box scaled and the centre moved a little."""
        shape = shape_matrix(x, generator, self.rotation_deg, self.slant, self.aspect)
        return fit_shaped(x, generator, shape, self.box, self.scale, self.shift_px)

    def describe(self) -> str:
        """One sentence for the model card."""
        return (
            f"Training batches augmented on the fly ({1 - self.keep:.0%} of rows): pen width, "
            f"slant up to {self.slant:g}, width x{self.aspect[0]:g}-{self.aspect[1]:g}, rotation "
            f"up to {self.rotation_deg:g} degrees, then refitted to a {self.box:g} px box "
            f"(x{self.scale[0]:g}-{self.scale[1]:g}) centred by mass (+-{self.shift_px:g} px) "
            "as service.codecs.images does, chalk grain and noise."
        )


def per_row(
    x: torch.Tensor, generator: torch.Generator, lo: float = 0.0, hi: float = 1.0
) -> torch.Tensor:
    """One uniform number in [lo, hi) per row of the (N, 1, H, W) batch, shaped (N, 1)."""
    draw = torch.rand(len(x), 1, generator=generator, device=x.device, dtype=x.dtype)
    return lo + (hi - lo) * draw


def pixel_view(values: torch.Tensor) -> torch.Tensor:
    """(N, 1) per-row values shaped to broadcast over (N, 1, H, W) images."""
    return values[:, :, None, None]


def blur3(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 binomial blur ([1, 2, 1] / 4 along each axis), zero outside the image; shifted
    slices, as conv2d of one channel is several times slower on CPU."""
    for dim in (2, 3):
        out = x * 0.5
        out.narrow(dim, 1, SIDE - 1).add_(x.narrow(dim, 0, SIDE - 1), alpha=0.25)
        out.narrow(dim, 0, SIDE - 1).add_(x.narrow(dim, 1, SIDE - 1), alpha=0.25)
        x = out
    return x


def restroke(x: torch.Tensor, generator: torch.Generator, pen: tuple[float, float]) -> torch.Tensor:
    """Other pens: blur the strokes, then take as ink what is above a threshold per row. A
    low threshold widens every stroke by about a pixel, a high one thins it; stretching what
    remains to [0, 1] is the service's contrast stretch, which saturates strokes."""
    low = pixel_view(per_row(x, generator, *pen))
    high = low + pixel_view(per_row(x, generator, 0.15, 0.45)) * (1 - low)
    return ((blur3(x) - low) / (high - low)).clamp(0, 1)


def shape_matrix(
    x: torch.Tensor,
    generator: torch.Generator,
    degrees: float,
    slant: float,
    aspect: tuple[float, float],
) -> torch.Tensor:
    """(N, 2, 2) maps in (column, row) pixel units: width scaled, slanted, then turned."""
    angle = per_row(x, generator, -degrees, degrees).flatten() * (math.pi / 180)
    shear = per_row(x, generator, -slant, slant).flatten()
    width = per_row(x, generator, *aspect).flatten()
    cos, sin = angle.cos(), angle.sin()
    # rotation @ [[width, shear], [0, 1]]
    return torch.stack(
        [
            torch.stack([cos * width, cos * shear - sin], 1),
            torch.stack([sin * width, sin * shear + cos], 1),
        ],
        1,
    )


def warped_extent(x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """(N, 1) the longer side of each row's ink once mapped by `shape`: every ink pixel's
    (column, row) is projected on the two mapped axes (what the service's crop would see)."""
    mask = (x > INK_LEVEL * x.amax(dim=(1, 2, 3), keepdim=True)).flatten(1)  # (N, H * W)
    cols, rows = pixel_grid(x).unbind(1)
    sides = []
    for axis in (0, 1):
        along = shape[:, axis, 0, None] * cols + shape[:, axis, 1, None] * rows
        high = torch.where(mask, along, -math.inf).amax(dim=1)
        low = torch.where(mask, along, math.inf).amin(dim=1)
        sides.append(torch.where(mask.any(dim=1), high - low + 1, float(SIDE)))
    return torch.maximum(*sides)[:, None].clamp_min(1.0)


def fit_to(x: torch.Tensor, forward: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Resample so that pixel p lands at target + forward @ (p - centre of mass): one bilinear
    pass from the output's pixels back to the input's, rescaled to a peak of 1."""
    mass = centre_of_mass(x).flip(1)  # (column, row), as `forward` maps
    (a, b), (c, d) = forward[:, 0].unbind(1), forward[:, 1].unbind(1)
    det = a * d - b * c
    inverse = (
        torch.stack([torch.stack([d, -b], 1), torch.stack([-c, a], 1)], 1) / det[:, None, None]
    )
    offset = mass - (inverse @ target.flip(1)[:, :, None]).squeeze(2)
    cols, rows = pixel_grid(x).unbind(1)  # (H * W,) each
    source = [
        inverse[:, axis, 0, None] * cols + inverse[:, axis, 1, None] * rows + offset[:, axis, None]
        for axis in (0, 1)
    ]
    grid = ((2 * torch.stack(source, 2) + 1) / SIDE - 1).reshape(len(x), SIDE, SIDE, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out / out.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)


@functools.cache
def _pixel_grid(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    index = torch.arange(SIDE, device=device, dtype=dtype)
    rows, cols = torch.meshgrid(index, index, indexing="ij")
    return torch.stack([cols.flatten(), rows.flatten()], 1)  # (H * W, 2) as (column, row)


def pixel_grid(x: torch.Tensor) -> torch.Tensor:
    """Every output pixel's (column, row), row-major: what grid_sample's grid lists."""
    return _pixel_grid(x.device, x.dtype)


def renormalise(
    x: torch.Tensor,
    generator: torch.Generator,
    box: float,
    scale: tuple[float, float],
    shift_px: float,
) -> torch.Tensor:
    """The service's fit of the ink's longer side to `box` px and centring by mass, in one
    resample; the box varies by `scale`, the centre of mass by up to `shift_px` per axis."""
    identity = torch.eye(2, device=x.device, dtype=x.dtype).expand(len(x), 2, 2)
    return fit_shaped(x, generator, identity, box, scale, shift_px)


def fit_shaped(
    x: torch.Tensor,
    generator: torch.Generator,
    shape: torch.Tensor,
    box: float,
    scale: tuple[float, float],
    shift_px: float,
) -> torch.Tensor:
    """Map each row by `shape`, its ink's longer side fitted to `box` px (x `scale`) and its
    centre of mass moved to the centre (+- `shift_px` per axis): one resample."""
    zoom = box * per_row(x, generator, *scale) / warped_extent(x, shape)
    jitter = torch.cat([per_row(x, generator, -shift_px, shift_px) for _ in range(2)], 1)
    return fit_to(x, shape * zoom[:, :, None], CENTRE + jitter)


def ink_box(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(top, bottom, left, right) pixel indices of each row's ink, (N,) each; a blank row
    gives the whole image."""
    mask = x[:, 0] > INK_LEVEL * x.amax(dim=(1, 2, 3))[:, None, None]
    return (*bounds(mask.any(dim=2)), *bounds(mask.any(dim=1)))


def bounds(occupied: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, last) index of the True entries of each (N, L) row; (0, L - 1) where none."""
    length = occupied.shape[1]
    index = torch.arange(length, device=occupied.device)
    first = torch.where(occupied, index, length).amin(dim=1)
    last = torch.where(occupied, index, -1).amax(dim=1)
    empty = last < 0
    first, last = torch.where(empty, 0, first), torch.where(empty, length - 1, last)
    return first.to(torch.float32), last.to(torch.float32)


def ink_extent(x: torch.Tensor) -> torch.Tensor:
    """(N,) the longer side, in pixels, of each row's bounding box of ink."""
    top, bottom, left, right = ink_box(x)
    return torch.maximum(bottom - top, right - left) + 1


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) centre of mass (row, column) in pixel indices; the centre for a blank row."""
    weights = x[:, 0]
    total = weights.sum(dim=(1, 2))
    index = torch.arange(SIDE, device=x.device, dtype=x.dtype)
    rows = (weights.sum(dim=2) * index).sum(dim=1)
    cols = (weights.sum(dim=1) * index).sum(dim=1)
    mass = torch.stack([rows, cols], 1) / total.clamp_min(1e-6)[:, None]
    return torch.where(total[:, None] > 0, mass, torch.full_like(mass, CENTRE))


@functools.cache
def pattern_banks(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(BANK, 1, 28, 28) chalk pores (smooth noise, about 2 px across) and (BANK, 1, 28, 28)
    unit Gaussian noise, from a fixed seed: drawing them per batch cost more than the rest."""
    generator = torch.Generator().manual_seed(0x5EED)
    pores = torch.rand(BANK, 1, SIDE // 2, SIDE // 2, generator=generator)
    pores = F.interpolate(pores, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    noise = torch.randn(BANK, 1, SIDE, SIDE, generator=generator)
    return pores.to(device, dtype), noise.to(device, dtype)


def pattern(x: torch.Tensor, generator: torch.Generator, which: int) -> torch.Tensor:
    """A bank pattern per row, each picked at random and flipped or transposed at random."""
    bank = pattern_banks(x.device, x.dtype)[which]
    picked = bank[torch.randint(BANK, (len(x),), generator=generator, device=x.device)]
    return picked.flip(3) if bool(torch.rand((), generator=generator) < 0.5) else picked


def add_grain(x: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    """Chalk skips over the board's pores: holes about 2 px across, more where ink is faint."""
    depth = pixel_view(per_row(x, generator, 0.3, 0.9))
    grainy = ((x - depth * pattern(x, generator, 0)) * 2).clamp(0, 1)
    picked = pixel_view((per_row(x, generator) < share).to(x.dtype))
    return torch.lerp(x, grainy, picked)


def add_noise(x: torch.Tensor, generator: torch.Generator, std: float) -> torch.Tensor:
    """Faint background noise, up to `std`, kept in [0, 1]."""
    level = pixel_view(per_row(x, generator, 0.0, std))
    return (x + pattern(x, generator, 1) * level).clamp(0, 1)
