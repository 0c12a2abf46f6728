"""Which sources of printed and pen-drawn characters a set may draw from.

Fonts (`training.fonts`) and pen templates (`training.handwriting`) are split in two: training
and the tuning set (`bench.wild`) use the "tune" half, the test set only the "test" half, so a
model or a method tuned here is scored on typefaces and handwriting it has never seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

import numpy as np

Rng = np.random.Generator
Split = Literal["tune", "test"]
SPLITS: tuple[Split, ...] = ("tune", "test")
T = TypeVar("T")


def choose(options: Sequence[T], rng: Rng) -> T:
    """One of `options`, each as likely."""
    return options[int(rng.integers(len(options)))]
