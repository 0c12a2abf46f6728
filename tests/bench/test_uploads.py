"""The upload generator: every style makes a plausible file, seeds reproduce it, and the committed
set under tests/fixtures/uploads matches its manifest and the MNIST test labels."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import uploads
from tests.conftest import MNIST_FIXTURE

UPLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "uploads"
MODES = {"canvas": "RGBA", "clean_inverted": "L", "white_on_black": "L"}
LIGHT_PAPER = ["scan", "photo", "blue_ink", "clean_inverted"]
FORMATS = {"jpg": "JPEG", "png": "PNG"}


def read_idx(name: str) -> np.ndarray:
    """An IDX file of the fixture, read directly: torchvision's import alone takes seconds."""
    data = (MNIST_FIXTURE / "MNIST" / "raw" / name).read_bytes()
    dims = data[3]
    shape = np.frombuffer(data[4 : 4 + 4 * dims], ">u4")
    return np.frombuffer(data[4 + 4 * dims :], np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return read_idx("t10k-images-idx3-ubyte")


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return read_idx("t10k-labels-idx1-ubyte")


def render(style: str, digit: np.ndarray, seed: int | list[int]) -> tuple[Image.Image, bytes, str]:
    data, ext = uploads.STYLES[style](digit, np.random.default_rng(seed))
    image = Image.open(io.BytesIO(data))
    image.load()
    return image, data, ext


def border(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])


@pytest.mark.parametrize("style", uploads.STYLES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_style_writes_an_image_pillow_opens(style: str, seed: int, digits: np.ndarray) -> None:
    image, _, ext = render(style, digits[seed], seed)
    assert image.format == FORMATS[ext]
    assert image.mode == MODES.get(style, "RGB")
    width, height = image.size
    assert 64 <= min(width, height) <= max(width, height) <= 500
    assert max(width, height) / min(width, height) <= 1.51


@pytest.mark.parametrize("style", LIGHT_PAPER)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dark_ink_on_light_paper(style: str, seed: int, digits: np.ndarray) -> None:
    grey = np.asarray(render(style, digits[seed], seed)[0].convert("L"), np.float32)
    paper = np.median(border(grey))
    assert paper >= 120
    assert paper - np.percentile(grey, 0.5) >= 60  # ink faint at worst, never invisible


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chalk_is_light_on_a_dark_board(seed: int, digits: np.ndarray) -> None:
    grey = np.asarray(render("chalk", digits[seed], seed)[0].convert("L"), np.float32)
    board = np.median(border(grey))
    assert board <= 90
    assert np.percentile(grey, 99.5) - board >= 100


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_white_on_black_keeps_mnist_polarity(seed: int, digits: np.ndarray) -> None:
    grey = np.asarray(render("white_on_black", digits[seed], seed)[0])
    assert border(grey).max() == 0
    assert grey.max() >= 200


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_canvas_is_transparent_with_dark_opaque_strokes(seed: int, digits: np.ndarray) -> None:
    rgba = np.asarray(render("canvas", digits[seed], seed)[0])
    alpha = rgba[..., 3]
    assert [alpha[0, 0], alpha[0, -1], alpha[-1, 0], alpha[-1, -1]] == [0, 0, 0, 0]
    assert (alpha == 0).mean() > 0.5
    assert (alpha == 255).any()
    assert 0 < ((alpha > 0) & (alpha < 255)).sum() < (alpha == 255).sum()  # antialiased edges
    assert rgba[alpha > 0, :3].max() <= 80


@pytest.mark.parametrize("style", uploads.STYLES)
def test_same_seed_same_bytes(style: str, digits: np.ndarray) -> None:
    _, first, _ = render(style, digits[7], 5)
    _, again, _ = render(style, digits[7], 5)
    _, other, _ = render(style, digits[7], 6)
    assert first == again
    assert first != other


def test_digit_fills_part_of_the_canvas_and_stays_inside(digits: np.ndarray) -> None:
    for seed in range(10):
        size = (int(200 + 10 * seed), 240)
        mask = uploads.digit_mask(digits[seed], np.random.default_rng(seed), size)
        assert mask.shape == (240, size[0])
        assert mask.min() >= 0
        assert mask.max() <= 1
        rows = np.nonzero(mask.max(axis=1) > 0.5)[0]
        assert 0.3 * 240 <= rows[-1] - rows[0] + 1 <= 240


def test_generate_writes_manifest_and_is_reproducible(
    tmp_path: Path, digits: np.ndarray, labels: np.ndarray
) -> None:
    first, again = tmp_path / "a", tmp_path / "b"
    manifest = uploads.generate(digits[:20], labels[:20], first, per_style=2, seed=3)
    assert manifest == json.loads((first / "manifest.json").read_text())
    assert len(manifest) == 2 * len(uploads.STYLES)
    for entry in manifest:
        assert entry["label"] == labels[entry["index"]]
    uploads.generate(digits[:20], labels[:20], again, per_style=2, seed=3)
    for entry in manifest:
        assert (first / entry["file"]).read_bytes() == (again / entry["file"]).read_bytes()
    uploads.generate(digits[:20], labels[:20], first, per_style=1, seed=3)
    assert len(list(first.iterdir())) == len(uploads.STYLES) + 1  # the stale images are gone


def test_committed_uploads_match_their_manifest(labels: np.ndarray) -> None:
    manifest = json.loads((UPLOADS / "manifest.json").read_text())
    files = {path.name for path in UPLOADS.iterdir()} - {"manifest.json"}
    assert sorted(entry["file"] for entry in manifest) == sorted(files)
    styles = [entry["style"] for entry in manifest]
    assert {style: styles.count(style) for style in uploads.STYLES} == dict.fromkeys(
        uploads.STYLES, 30
    )
    for entry in manifest:
        assert 0 <= entry["index"] < len(labels)  # the fixture's test split, nothing else
        assert entry["label"] == labels[entry["index"]]
        with Image.open(UPLOADS / entry["file"]) as image:
            assert image.format == FORMATS[entry["file"].rsplit(".", 1)[1]]
            assert image.mode == MODES.get(entry["style"], "RGB")


@pytest.mark.parametrize("style", uploads.STYLES)
def test_committed_uploads_are_what_the_generator_makes(style: str, digits: np.ndarray) -> None:
    """After changing the generator, regenerate the set: `python -m bench.uploads --data-dir
    tests/fixtures/mnist --out tests/fixtures/uploads --per-style 30 --seed 0 --first 200`.
    Pixels, not bytes, are compared: another libjpeg or zlib may encode them differently."""
    manifest = json.loads((UPLOADS / "manifest.json").read_text())
    entry = next(entry for entry in manifest if entry["style"] == style)
    seed = [0, list(uploads.STYLES).index(style), 0]  # generate()'s seed for its first image
    rendered = np.asarray(render(style, digits[entry["index"]], seed)[0], np.float32)
    committed = np.asarray(Image.open(UPLOADS / entry["file"]), np.float32)
    assert rendered.shape == committed.shape
    assert np.abs(rendered - committed).mean() < 1.0
