"""Digits in the wild, and pictures that hold no digit: generated sets to score uploads on.

MNIST-rendered uploads (`bench.uploads`) say how the service does on MNIST's own writers. These
sets come from elsewhere: pen-stroke templates of our own (`strokes`), printed fonts (`glyphs`),
notebooks, whiteboards and boards (`surfaces`), and pictures of letters, symbols, words, numbers,
scribbles, textures and empty pages (`kinds`). A tuning set and a test set (`sets`) share no
seed, font or template; `score` runs a set through the service's preprocessing and a model.

    python -m bench.wild --out /tmp/wild-test --set test --per-kind 150
    python -m bench.wild score /tmp/wild-test
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
