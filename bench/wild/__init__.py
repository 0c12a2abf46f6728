"""Digits in the wild, and pictures that hold no digit: generated sets to score uploads on.

MNIST-rendered uploads (`bench.uploads`) say how the service does on MNIST's own writers. These
sets come from elsewhere: pen-stroke templates of our own (`training.handwriting`), printed
fonts (`training.fonts`), notebooks, whiteboards and boards (`surfaces`), and pictures of
letters, symbols, words, numbers, scribbles, textures and empty pages (`kinds`). A tuning set
and a test set (`sets`) share no seed, font or template; `score` runs a set through the
service's preprocessing and a model.

    python -m bench.wild --out /tmp/wild-test --set test --per-kind 150
    python -m bench.wild score /tmp/wild-test
"""

from __future__ import annotations

from training.sources import SPLITS, Rng, Split, choose

__all__ = ["SPLITS", "Rng", "Split", "choose"]
