"""The batch augmentation: shapes and ranges kept, seeded, normalised like the service does."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from service.codecs import images
from tests.conftest import MNIST_FIXTURE
from training import augment, data
from training.augment import Augmentation
from training.fit import fit
from training.pipeline import RunOptions, build_model
from training.tasks import IRIS, MNIST, Hyperparameters


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """The fixture's 275 training digits, (N, 784) in [0, 1]."""
    return data.load_mnist(MNIST_FIXTURE, seed=0, download=False).train.x


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def as_images(rows: torch.Tensor) -> torch.Tensor:
    return rows.reshape(-1, 1, 28, 28)


def test_shape_dtype_and_range_are_kept(digits: torch.Tensor) -> None:
    out = Augmentation()(digits, generator())
    assert out.shape == digits.shape
    assert out.dtype == torch.float32
    assert out.min() >= 0.0
    assert out.max() <= 1.0
    assert torch.isfinite(out).all()


def test_same_seed_same_batch_other_seed_another(digits: torch.Tensor) -> None:
    first = Augmentation()(digits, generator(3))
    assert torch.equal(first, Augmentation()(digits, generator(3)))
    assert not torch.equal(first, Augmentation()(digits, generator(4)))


@pytest.mark.parametrize(("keep", "changed"), [(1.0, 0.0), (0.0, 1.0)])
def test_keep_is_the_share_of_rows_left_alone(
    digits: torch.Tensor, keep: float, changed: float
) -> None:
    out = Augmentation(keep=keep)(digits, generator())
    assert (out != digits).any(dim=1).float().mean().item() == changed


def test_about_keep_of_the_rows_are_left_alone(digits: torch.Tensor) -> None:
    out = Augmentation(keep=0.25)(digits, generator())
    kept = (out == digits).all(dim=1).float().mean().item()
    assert 0.15 < kept < 0.35


def test_changed_rows_are_normalised_like_the_service(digits: torch.Tensor) -> None:
    """Rotated, restroked and all, a digit ends up in MNIST's frame: its ink's longer side
    about 20 px (x scale), its centre of mass near (14, 14) (+- shift)."""
    out = as_images(Augmentation(keep=0.0)(digits, generator()))
    extent, mass = augment.ink_extent(out), augment.centre_of_mass(out)
    assert 20 * 0.85 - 1.5 <= extent.min() <= extent.max() <= 20 * 1.15 + 1.5
    assert (mass - 14.0).abs().max() <= 2.0 + 1.0
    assert out.amax(dim=(1, 2, 3)).min() > 0.5  # rescaled to a peak of 1, then maybe blurred


def test_renormalise_without_variation_is_the_service_frame() -> None:
    """A small bar in a corner comes out as service.codecs.images would place it."""
    bar = torch.zeros(1, 1, 28, 28)
    bar[0, 0, 2:12, 3:6] = 1.0
    out = augment.renormalise(bar, generator(), box=20.0, scale=(1.0, 1.0), shift_px=0.0)
    assert augment.ink_extent(out).item() == pytest.approx(20, abs=1)
    assert augment.centre_of_mass(out)[0].tolist() == pytest.approx([14.0, 14.0], abs=0.05)
    expected = images.center_by_mass(images.fit_box(images.crop_to_ink(bar[0, 0].numpy())))
    rows, cols = np.indices(expected.shape)
    total = expected.sum()
    assert [(rows * expected).sum() / total, (cols * expected).sum() / total] == pytest.approx(
        [14.0, 14.0], abs=0.5
    )


def test_mnist_digits_are_already_in_that_frame(digits: torch.Tensor) -> None:
    x = as_images(digits)
    assert augment.ink_extent(x).median().item() == 20
    assert augment.centre_of_mass(x).mean(dim=0).tolist() == pytest.approx([14.0, 14.0], abs=0.3)


def test_blur3_is_the_binomial_filter_with_zeros_outside() -> None:
    x = torch.rand(4, 1, 28, 28, generator=generator())
    kernel = torch.tensor([1.0, 2.0, 1.0]) / 4
    expected = F.conv2d(x, torch.outer(kernel, kernel)[None, None], padding=1)
    assert torch.allclose(augment.blur3(x), expected, atol=1e-6)


def ink_area(x: torch.Tensor) -> float:
    return (x > 0.5).float().sum().item()


def test_restroke_widens_with_a_low_threshold_and_thins_with_a_high_one(
    digits: torch.Tensor,
) -> None:
    x = as_images(digits)
    thick = augment.restroke(x, generator(), pen=(0.0, 0.05))
    thin = augment.restroke(x, generator(), pen=(0.6, 0.65))
    assert ink_area(thick) > 1.15 * ink_area(x) > 1.15 * 1.15 * ink_area(thin)
    assert thick.min() >= 0.0
    assert thick.max() == 1.0  # the contrast stretch saturates strokes, as the service's


def test_warp_turns_slants_and_narrows_the_digit_before_fitting_it(digits: torch.Tensor) -> None:
    """A tall bar, slanted, comes out leaning; narrowed, thinner; either way refitted."""
    bar = torch.zeros(1, 1, 28, 28)
    bar[0, 0, 4:24, 12:16] = 1.0
    upright = Augmentation(rotation_deg=0, slant=0, aspect=(1, 1), scale=(1, 1), shift_px=0)
    leaning = Augmentation(rotation_deg=0, slant=0.3, aspect=(1, 1), scale=(1, 1), shift_px=0)
    straight, slanted = upright.warp(bar, generator()), leaning.warp(bar, generator())
    assert augment.ink_extent(straight).item() == pytest.approx(20, abs=1)
    tops, bottoms = slanted[0, 0, 5].argmax().item(), slanted[0, 0, 22].argmax().item()
    assert abs(tops - bottoms) >= 2  # the top and the bottom of the bar no longer line up
    assert straight[0, 0, 5].argmax().item() == straight[0, 0, 22].argmax().item()


def test_run_options_turn_the_recipe_and_its_epochs_on() -> None:
    plain = RunOptions(Path("."), Path("models"), 0, torch.device("cpu"))
    augmented = RunOptions(Path("."), Path("models"), 0, torch.device("cpu"), augment=True)
    assert plain.augmentation(MNIST) is None
    assert plain.hyperparameters(MNIST).epochs == MNIST.defaults.epochs
    assert augmented.augmentation(MNIST) is MNIST.augmentation
    assert augmented.hyperparameters(MNIST).epochs == MNIST.augmented_epochs
    assert augmented.augmentation(IRIS) is None  # no recipe: augmenting changes nothing
    assert augmented.hyperparameters(IRIS) == plain.hyperparameters(IRIS)


def test_an_augmented_fit_is_reproducible() -> None:
    splits = data.load_mnist(MNIST_FIXTURE, seed=0, download=False)
    params = Hyperparameters(epochs=1, batch_size=64, lr=3e-3, weight_decay=1e-2)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(MNIST, splits.train)
        fit(model, MNIST, splits, params, 0, False, augment=Augmentation())
        weights.append(model.net[0].weight.detach().clone())
    assert torch.equal(*weights)
