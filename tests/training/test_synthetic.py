"""Rows drawn beside MNIST: digits and non-digits in MNIST's frame, from the tuning sources only."""

import numpy as np
import pytest
import torch

from tests.conftest import MNIST_FIXTURE
from training import augment, data, synthetic
from training.fit import SpreadOverClasses
from training.fonts import TEST_FONTS, TUNE_FONTS


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic.digit_rows(seed=0)


@pytest.fixture(scope="module")
def mnist() -> data.Split:
    return data.load_mnist(MNIST_FIXTURE, seed=0, download=False).train


def as_images(rows: torch.Tensor) -> torch.Tensor:
    return rows.reshape(-1, 1, 28, 28)


def test_every_digit_is_drawn_equally_often(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    rows, labels = digits
    assert rows.shape == (len(labels), 784)
    counts = torch.bincount(labels, minlength=10)
    assert len(counts) == 10
    assert counts.min() == counts.max() > 0


def test_drawn_rows_are_in_mnists_frame(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    images = as_images(digits[0])
    assert images.min() >= 0.0
    assert images.amax(dim=(1, 2, 3)).min() == pytest.approx(1.0)
    assert augment.ink_extent(images).min() >= 19
    assert augment.ink_extent(images).max() <= 21
    assert (augment.centre_of_mass(images) - 14.0).abs().max() < 0.6


def test_the_same_seed_draws_the_same_rows() -> None:
    first, _ = synthetic.digit_rows(seed=3)
    again, _ = synthetic.digit_rows(seed=3)
    other, _ = synthetic.digit_rows(seed=4)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_printed_rows_use_the_tuning_fonts_only() -> None:
    """The wild test set prints with the other half: training must never see those faces."""
    fonts = synthetic.fonts_with("0123456789")
    assert fonts
    assert set(fonts) <= set(TUNE_FONTS)
    assert set(fonts).isdisjoint(TEST_FONTS)


def test_letters_that_pass_for_digits_are_not_drawn_as_non_digits() -> None:
    assert set(synthetic.LETTERS).isdisjoint("OoIlSsBgqZz")


def test_non_digits_hold_ink_in_the_frame(mnist: data.Split) -> None:
    rows = synthetic.non_digit_rows(seed=0, digits=mnist.x, drawn=70)
    assert rows.shape == (3 * 70, 784)
    images = as_images(rows)
    assert images.min() >= 0.0
    assert images.max() <= 1.0 + 1e-6
    assert (images.amax(dim=(1, 2, 3)) > 0.5).all()  # no blank row: the service refuses those
    assert augment.ink_extent(images).median() == pytest.approx(20, abs=1)


def test_mnist_numbers_hold_several_digits_side_by_side(mnist: data.Split) -> None:
    """Fitted into one frame, two or three digits are wider than tall; as many as asked."""
    assert len(synthetic.mnist_numbers(mnist.x, 7, torch.Generator().manual_seed(0))) == 7
    rows = synthetic.mnist_numbers(mnist.x, 40, torch.Generator().manual_seed(0))
    _, _, left, right = augment.ink_box(as_images(rows))
    top, bottom, _, _ = augment.ink_box(as_images(rows))
    assert ((right - left) > (bottom - top)).float().mean() > 0.9


def test_the_training_split_gains_digits_and_rows_of_no_class(mnist: data.Split) -> None:
    """In proportion to the split: about 7% drawn digits and 8% non-digits."""
    split = synthetic.with_upload_like_rows(mnist, seed=0)
    no_class = int((split.y == data.NO_CLASS).sum())
    drawn_digits = len(split) - len(mnist) - no_class
    assert drawn_digits == round(synthetic.DIGIT_SHARE * len(mnist))
    assert no_class == pytest.approx(synthetic.NON_DIGIT_SHARE * len(mnist), abs=3)
    assert no_class > 0
    assert torch.equal(split.x[: len(mnist)], mnist.x)
    assert torch.equal(split.y[: len(mnist)], mnist.y)
    assert set(split.y[len(mnist) : len(mnist) + drawn_digits].tolist()) <= set(range(10))


def test_on_mnists_own_split_the_shares_are_the_bundled_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """55,000 rows get 3,840 drawn digits (all 480, 8 times) and 4,200 non-digits, as mnist 4's
    card records (63,040 training rows)."""
    big = data.Split(torch.zeros(55_000, 784), torch.zeros(55_000, dtype=torch.long))
    monkeypatch.setattr(
        synthetic, "non_digit_rows", lambda seed, digits, drawn: torch.zeros(3 * drawn, 784)
    )
    split = synthetic.with_upload_like_rows(big, seed=0)
    assert len(split) == 63_040
    assert int((split.y == data.NO_CLASS).sum()) == 4_200


def test_a_row_of_no_class_is_taught_the_even_spread() -> None:
    """Its loss is lowest for equal logits; a labelled row's is plain cross-entropy."""
    loss = SpreadOverClasses(10)
    none = torch.tensor([data.NO_CLASS])
    flat, peaked = torch.zeros(1, 10), torch.tensor([[5.0] + [0.0] * 9])
    assert loss(flat, none).item() == pytest.approx(np.log(10), rel=1e-6)
    assert loss(peaked, none) > loss(flat, none)
    logits, labels = torch.randn(6, 10), torch.tensor([0, 3, 9, 1, 1, 2])
    expected = torch.nn.functional.cross_entropy(logits, labels)
    assert loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
