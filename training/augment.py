"""On-the-fly augmentation of MNIST batches, so training digits look like preprocessed uploads.

`service.codecs.images` turns a photo, scan, canvas export or chalk board into a 28x28 row: the
ink is stretched to full contrast (strokes saturate, faint edges go), pens run from hairline to
marker, the writer's slant stays, chalk leaves holes, and the digit is cropped, fitted into a
20 px box and centred by centre of mass. MNIST has little of that variety. Each batch gets such
changes on a random share of its rows, then the service's re-normalisation (box, centre of
mass), all as tensor operations on the whole batch: no per-image loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812

SIDE = 28
CENTRE = 14.0  # pixel index of MNIST's (and service.codecs.images') centre of mass, both axes
INK_LEVEL = 0.2  # of a row's peak: what counts as ink for its bounding box, as in the service


@dataclass(frozen=True)
class Augmentation:
    """How far each change goes; a share `keep` of every batch is left as MNIST has it."""

    keep: float = 0.25
    rotation_deg: float = 12.0
    scale: tuple[float, float] = (0.85, 1.15)  # of the 20 px box the digit is refitted into
    shift_px: float = 2.0  # of the centre of mass from the centre, per axis
    thicken: float = 0.3  # share of rows with a wider pen (part of a 3x3 dilation)
    thin: float = 0.3  # share of rows with a thinner pen (part of a 3x3 erosion)
    grain: float = 0.15  # share of rows with chalk-like holes
    blur: float = 0.3  # share of rows blurred a little
    noise_std: float = 0.03  # the most background noise a row gets
    box: float = 20.0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(N, 784) pixels in [0, 1] -> (N, 784) pixels in [0, 1], each row changed or kept."""
        x = images.reshape(-1, 1, SIDE, SIDE)
        changed = per_row(x, generator) >= self.keep
        out = restroke(x, generator, self.thicken, self.thin)
        out = stretch_contrast(out, generator)
        out = add_grain(out, generator, self.grain)
        out = rotate(out, generator, self.rotation_deg)
        out = renormalise(out, generator, self.box, self.scale, self.shift_px)
        out = soften(out, generator, self.blur, self.noise_std)
        return torch.where(changed, out, x).reshape(images.shape)

    def describe(self) -> str:
        """One sentence for the model card."""
        return (
            f"Training batches augmented on the fly ({1 - self.keep:.0%} of rows): pen width, "
            f"contrast stretch, chalk grain, rotation up to {self.rotation_deg:g} degrees, then "
            f"refitted to a {self.box:g} px box (x{self.scale[0]:g}-{self.scale[1]:g}) centred "
            f"by mass (+-{self.shift_px:g} px) as service.codecs.images does, blur and noise."
        )


def per_row(
    x: torch.Tensor, generator: torch.Generator, lo: float = 0.0, hi: float = 1.0
) -> torch.Tensor:
    """One uniform number in [lo, hi) per row of the (N, 1, H, W) batch, shaped (N, 1, 1, 1)."""
    draw = torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)
    return lo + (hi - lo) * draw


def chosen(x: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    """A (N, 1, 1, 1) 0/1 mask picking about `share` of the rows."""
    return (per_row(x, generator) < share).to(x.dtype)


def neighbours(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each pixel's predecessor, itself and successor along `dim` (-1 or -2), zero-padded."""
    padded = F.pad(x, (1, 1) if dim == -1 else (0, 0, 1, 1))
    before, centre, after = (padded.narrow(dim, start, x.shape[dim]) for start in range(3))
    return before, centre, after


def dilate(x: torch.Tensor) -> torch.Tensor:
    """3x3 grey-level dilation (max filter), separably: max_pool2d is twice as slow on CPU."""
    return max3(max3(x, -1), -2)


def erode(x: torch.Tensor) -> torch.Tensor:
    """3x3 grey-level erosion (min filter); outside the image counts as background."""
    return -dilate(-x)


def max3(x: torch.Tensor, dim: int) -> torch.Tensor:
    before, centre, after = neighbours(x, dim)
    return torch.maximum(torch.maximum(before, centre), after)


def blur3(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 binomial blur ([1, 2, 1] / 4 along each axis)."""
    for dim in (-1, -2):
        before, centre, after = neighbours(x, dim)
        x = (before + 2 * centre + after) / 4
    return x


def restroke(
    x: torch.Tensor, generator: torch.Generator, thicken: float, thin: float
) -> torch.Tensor:
    """Other pens: move part of the way to the dilated or the eroded digit, never both."""
    grow = chosen(x, generator, thicken) * per_row(x, generator, 0.2, 1.0)
    shrink = chosen(x, generator, thin) * (grow == 0) * per_row(x, generator, 0.2, 0.7)
    return x + grow * (dilate(x) - x) + shrink * (erode(x) - x)


def stretch_contrast(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Like the service's contrast stretch: faint pixels go to 0 and strong ones saturate."""
    low = per_row(x, generator, 0.0, 0.35)
    high = low + per_row(x, generator, 0.3, 1.0) * (1 - low)
    return ((x - low) / (high - low)).clamp(0, 1)


def add_grain(x: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    """Chalk skips over the board's pores: holes about 2 px across, more where ink is faint."""
    pores = torch.rand(len(x), 1, SIDE // 2, SIDE // 2, generator=generator, device=x.device)
    pores = F.interpolate(pores, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    grainy = ((x - per_row(x, generator, 0.3, 0.9) * pores) * 2).clamp(0, 1)
    return torch.lerp(x, grainy, chosen(x, generator, share))


def rotate(x: torch.Tensor, generator: torch.Generator, degrees: float) -> torch.Tensor:
    """Rotate each row about the image centre by up to +-`degrees`."""
    angle = per_row(x, generator, -degrees, degrees).flatten() * (math.pi / 180)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    return resample(x, torch.stack([cos, -sin, zero, sin, cos, zero], 1))


def resample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling through (N, 6) affine maps from output to input coordinates, in
    affine_grid's normalised units (x first)."""
    grid = F.affine_grid(theta.reshape(-1, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def renormalise(
    x: torch.Tensor,
    generator: torch.Generator,
    box: float,
    scale: tuple[float, float],
    shift_px: float,
) -> torch.Tensor:
    """The service's fit of the ink's longer side to `box` px and centring by mass, in one
    resample; the box varies by `scale`, the centre of mass by up to `shift_px` per axis.
    The result is rescaled to a peak of 1, as the service's is."""
    zoom = box * per_row(x, generator, *scale).flatten() / ink_extent(x).clamp_min(1.0)
    jitter = torch.cat([per_row(x, generator, -shift_px, shift_px) for _ in range(2)], 1)
    target = CENTRE + jitter.flatten(1)
    # affine_grid's units: u = (2 * index + 1) / SIDE - 1; the map is u_in = u_out / zoom + b
    mass_u, target_u = (2 * centre_of_mass(x) + 1) / SIDE - 1, (2 * target + 1) / SIDE - 1
    offset = mass_u - target_u / zoom[:, None]  # (row, column)
    inverse, zero = 1 / zoom, torch.zeros_like(zoom)
    out = resample(x, torch.stack([inverse, zero, offset[:, 1], zero, inverse, offset[:, 0]], 1))
    return out / out.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)


def ink_extent(x: torch.Tensor) -> torch.Tensor:
    """(N,) the longer side, in pixels, of each row's bounding box of ink."""
    mask = x[:, 0] > INK_LEVEL * x.amax(dim=(1, 2, 3))[:, None, None]
    return torch.maximum(span(mask.any(dim=2)), span(mask.any(dim=1)))


def span(occupied: torch.Tensor) -> torch.Tensor:
    """(N,) last - first + 1 of the True entries of each (N, L) row; 0 where there are none."""
    index = torch.arange(occupied.shape[1], device=occupied.device)
    first = torch.where(occupied, index, occupied.shape[1]).amin(dim=1)
    last = torch.where(occupied, index, -1).amax(dim=1)
    return (last - first + 1).clamp_min(0).to(torch.float32)


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) centre of mass (row, column) in pixel indices; the centre for a blank row."""
    weights = x[:, 0]
    total = weights.sum(dim=(1, 2))
    index = torch.arange(SIDE, device=x.device, dtype=x.dtype)
    rows = (weights.sum(dim=2) * index).sum(dim=1)
    cols = (weights.sum(dim=1) * index).sum(dim=1)
    mass = torch.stack([rows, cols], 1) / total.clamp_min(1e-6)[:, None]
    return torch.where(total[:, None] > 0, mass, torch.full_like(mass, CENTRE))


def soften(
    x: torch.Tensor, generator: torch.Generator, share: float, noise_std: float
) -> torch.Tensor:
    """A little blur on a share of rows and faint background noise on all, kept in [0, 1]."""
    x = torch.lerp(x, blur3(x), chosen(x, generator, share) * per_row(x, generator, 0.3, 1.0))
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise * per_row(x, generator, 0.0, noise_std)).clamp(0, 1)
