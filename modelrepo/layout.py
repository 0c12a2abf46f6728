"""Where things lie in a model repository, and how a new version gets there in one step.

Triton's layout: `<root>/<name>/config.pbtxt` and `<root>/<name>/<version>/` with the
model file and, for models trained here, `model.onnx`, `card.json` and `curves.png`. A version
directory is assembled in a staging directory beside its final place and renamed into place,
so a reader never sees half a version and an existing version is never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CONFIG_FILE = "config.pbtxt"
CARD_FILE = "card.json"
MODEL_FILE = "model.pt"  # TorchScript: what Triton's PyTorch backend reads
ONNX_FILE = "model.onnx"  # the same model as an ONNX graph, for ONNX Runtime
CURVES_FILE = "curves.png"
VERSION_DIR_MODE = 0o755


def model_names(root: Path) -> list[str]:
    """The model directories under `root` (hidden ones, such as staging, left out)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def version_dirs(model_dir: Path) -> list[Path]:
    """The numbered version directories of one model, lowest first. As in Triton, a version is
    a positive number written in ASCII digits without a leading zero: `0`, `01` (another name
    for 1) and other scripts' digits (`²`, which `int` refuses) are no versions."""
    if not model_dir.is_dir():
        return []
    return sorted(
        (p for p in model_dir.iterdir() if p.is_dir() and is_version(p.name)), key=version_of
    )


def is_version(name: str) -> bool:
    return name.isascii() and name.isdigit() and not name.startswith("0")


def version_of(path: Path) -> int:
    return int(path.name)


def versions(model_dir: Path) -> list[int]:
    return [int(p.name) for p in version_dirs(model_dir)]


def sha256_of(path: Path) -> str:
    """The hex digest a card records for its model file."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one step: readers see the old file or the new one, never a part."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
        file.write(text)
    os.replace(file.name, path)


def new_staging_dir(model_dir: Path) -> Path:
    """An empty hidden directory beside the versions, to assemble the next one in; readable by
    all, as a directory `mkdir` makes (mkdtemp's is its owner's only: a server running as
    another user, as the container's does, could not read the version)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
    staging.chmod(VERSION_DIR_MODE)
    return staging


def publish(staging: Path, model_dir: Path, finish: Callable[[Path, int], None]) -> int:
    """Move `staging` to the next free version directory and return that version.

    `finish(staging, version)` writes what depends on the version number (the card) just
    before the rename; when another writer claims the number first, it runs again with the
    next one. An existing version is never replaced.
    """
    while True:
        version = max(versions(model_dir), default=0) + 1
        finish(staging, version)
        target = model_dir / str(version)
        try:
            staging.rename(target)  # fails if another run claimed this version first
        except OSError:
            if not target.exists():
                raise
            continue
        return version


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
