"""The tuning and test sets: a fixed number of pictures of every kind, each from its own seed.

Digit kinds cycle through 0-9, so every digit is equally common. A picture's generator is made
from (seed, set, kind, n), so one picture can be re-drawn alone and adding a kind changes no
other kind's pictures; the two sets never share a seed, a font or a pen template.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from bench.uploads import write_manifest
from bench.wild import SPLITS, Split
from bench.wild.kinds import KINDS, Drawing

Entry = dict[str, str | int | None]


def label_of(kind: str, n: int) -> int | None:
    return n % 10 if KINDS[kind].digit else None


def picture(kind: str, split: Split, n: int, seed: int = 0) -> Drawing:
    """The `n`th picture of `kind` in `split`: the same bytes for the same arguments."""
    stream = [seed, SPLITS.index(split), zlib.crc32(kind.encode()), n]
    return KINDS[kind].render(label_of(kind, n), split, np.random.default_rng(stream))


def generate(
    out: Path, split: Split, per_kind: int, seed: int = 0, kinds: list[str] | None = None
) -> list[Entry]:
    """Write `per_kind` pictures of every kind (or of `kinds`) and OUT/manifest.json, a list of
    {file, kind, label, set, source, n}; files named like ours that the manifest lacks go."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[Entry] = []
    for kind in kinds or list(KINDS):
        for n in range(per_kind):
            drawing = picture(kind, split, n, seed)
            name = f"{kind}_{n:03d}.{drawing.ext}"
            (out / name).write_bytes(drawing.data)
            manifest.append(
                {
                    "file": name,
                    "kind": kind,
                    "label": label_of(kind, n),
                    "set": split,
                    "source": drawing.source,
                    "n": n,
                }
            )
    write_manifest(out, manifest, KINDS)
    return manifest
