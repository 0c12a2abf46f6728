"""The wild sets: every kind draws a decodable picture of its stated size, seeds reproduce it, the
tuning and test sets share no font, pen template or seed, and the scorer reads a set the way the
service answers it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.harness import RUNS
from bench.wild import SPLITS, Split, kinds, score, sets
from bench.wild import __main__ as cli
from tests.conftest import ROOT
from training import fonts as glyphs
from training import handwriting as strokes

FORMATS = {"jpg": "JPEG", "png": "PNG"}
MNIST_V3 = ROOT / "models" / "mnist" / "3"


def opened(drawing: kinds.Drawing) -> Image.Image:
    image = Image.open(io.BytesIO(drawing.data))
    image.load()
    return image


@pytest.mark.parametrize("kind", kinds.KINDS)
@pytest.mark.parametrize("split", SPLITS)
def test_each_kind_draws_a_picture_of_its_size(kind: str, split: Split) -> None:
    low, high = kinds.KINDS[kind].sides
    for n in (0, 7):
        drawing = sets.picture(kind, split, n)
        image = opened(drawing)
        assert image.format == FORMATS[drawing.ext]
        assert low <= min(image.size) <= max(image.size) <= high
        grey = np.asarray(image.convert("L"), np.float32)
        assert grey.std() > 1  # never a flat fill: even empty pages have light and texture


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_same_seed_same_bytes(kind: str) -> None:
    first = sets.picture(kind, "test", 3, seed=5)
    assert first == sets.picture(kind, "test", 3, seed=5)
    assert first.data != sets.picture(kind, "test", 3, seed=6).data
    assert first.data != sets.picture(kind, "tune", 3, seed=5).data


def test_labels_cycle_through_the_digits_and_non_digits_have_none() -> None:
    assert [sets.label_of("pen", n) for n in range(12)] == [*range(10), 0, 1]
    assert {sets.label_of(kind, 4) for kind, k in kinds.KINDS.items() if not k.digit} == {None}
    digit_kinds = {name for name, kind in kinds.KINDS.items() if kind.digit}
    assert {"ruled", "squared", "whiteboard", "printed", "pen", "thick"} <= digit_kinds
    assert {"letter", "symbol", "word", "number", "scribble", "texture", "empty"}.isdisjoint(
        digit_kinds
    )


def test_the_sets_print_in_different_fonts_that_all_exist() -> None:
    assert set(glyphs.TUNE_FONTS).isdisjoint(glyphs.TEST_FONTS)
    for name in glyphs.TUNE_FONTS + glyphs.TEST_FONTS:
        assert glyphs.has_glyphs(name, "0123456789")
    assert not glyphs.has_glyphs("cmr10", "★")  # the missing-glyph box is told apart


def frozen(template: strokes.Template) -> tuple[tuple[tuple[float, float], ...], ...]:
    return tuple(tuple((x, y) for x, y in stroke) for stroke in template)


def test_the_sets_write_with_different_pen_templates() -> None:
    for digit in range(10):
        tune, test = strokes.TUNE_TEMPLATES[digit], strokes.TEST_TEMPLATES[digit]
        assert len(tune) >= 2
        assert len(test) >= 2
        assert {frozen(t) for t in tune}.isdisjoint(frozen(t) for t in test)
        for template in (*tune, *test):
            points = np.vstack([np.asarray(stroke) for stroke in template])
            assert points.min() >= 0
            assert points.max() <= 1


def test_a_pen_digit_is_drawn_inside_the_canvas_at_its_height() -> None:
    for seed in range(5):
        mask, source = strokes.pen_digit(
            8, "test", np.random.default_rng(seed), (300, 200), height=120, pen=6
        )
        assert mask.shape == (200, 300)
        assert source.startswith("template 8.")
        rows = np.nonzero(mask.max(axis=1) > 0.5)[0]
        assert 100 <= rows[-1] - rows[0] + 1 <= 160  # jitter and the pen's width change it
        assert mask.max() <= 1


def test_generate_writes_a_reproducible_manifest(tmp_path: Path) -> None:
    first, again = tmp_path / "a", tmp_path / "b"
    chosen = ["printed", "pen", "letter"]
    manifest = sets.generate(first, "test", 3, seed=2, kinds=chosen)
    assert manifest == json.loads((first / "manifest.json").read_text())
    assert [entry["kind"] for entry in manifest] == [kind for kind in chosen for _ in range(3)]
    assert [entry["label"] for entry in manifest] == [0, 1, 2, 0, 1, 2, None, None, None]
    assert {entry["set"] for entry in manifest} == {"test"}
    fonts = {entry["source"] for entry in manifest if entry["kind"] == "printed"}
    assert fonts <= {f"font {name}" for name in glyphs.TEST_FONTS}
    sets.generate(again, "test", 3, seed=2, kinds=chosen)
    for entry in manifest:
        assert (first / entry["file"]).read_bytes() == (again / entry["file"]).read_bytes()
    sets.generate(first, "test", 1, seed=2, kinds=chosen)
    assert len(list(first.iterdir())) == len(chosen) + 1  # the stale pictures are gone


def test_the_tune_set_prints_only_its_own_fonts(tmp_path: Path) -> None:
    manifest = sets.generate(tmp_path, "tune", 6, kinds=["printed", "word"])
    assert {entry["source"] for entry in manifest} <= {f"font {n}" for n in glyphs.TUNE_FONTS}


def outcome(label: int | None, predicted: int | None, confidence: float = 0.5) -> score.Outcome:
    kind = "pen" if label is not None else "letter"
    return score.Outcome("f", kind, label, predicted is None, predicted, confidence)


def test_figures_count_a_refusal_as_wrong_and_confident_answers_to_non_digits() -> None:
    digits = [outcome(9, 9), outcome(9, 8, 0.95), outcome(6, 5), outcome(3, None)]
    others = [outcome(None, None), outcome(None, 4, 0.99), outcome(None, 4, 0.2)]
    summary = score.summarise(digits + others)
    assert list(summary) == ["pen", "letter", "all digits", "all non-digits"]
    pen, letter = summary["pen"], summary["letter"]
    assert (pen["accuracy"], pen["refused"], pen["confident_wrong"]) == (0.25, 0.25, 0.25)
    assert pen["confusions"] == [("9->8", 1), ("6->5", 1), ("3->422", 1)]
    assert letter["accuracy"] is None
    assert letter["refused"] == pytest.approx(1 / 3)
    assert letter["confident_wrong"] == pytest.approx(1 / 3)
    assert letter["confusions"] == [("x->4", 2), ("x->422", 1)]
    # flagged: refused, or a top probability below the service's default threshold (0.6)
    assert pen["flagged"] == pytest.approx(3 / 4)
    assert letter["flagged"] == pytest.approx(2 / 3)
    table = score.markdown(summary)
    assert "| pen | 4 | 25.0% | 25.0% | 75.0% | 25.0% | 9->8 (1), 6->5 (1), 3->422 (1) |" in table
    assert "| letter | 3 | - | 33.3% | 66.7% | 33.3% | x->4 (2), x->422 (1) |" in table


def test_the_cli_generates_and_scores_a_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, report = tmp_path / "set", tmp_path / "report"
    cli.main(["--out", str(folder), "--set", "test", "--per-kind", "2", "--kinds", "pen,empty"])
    blank = io.BytesIO()
    Image.new("L", (64, 64), 255).save(blank, "PNG")  # the service answers 422 no digit
    (folder / "blank.png").write_bytes(blank.getvalue())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.append({"file": "blank.png", "kind": "empty", "label": None, "set": "test"})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    cli.main(["score", str(folder), "--model", str(MNIST_V3), "--out", str(report)])
    printed = capsys.readouterr().out
    assert "| pen | 2 |" in printed
    assert "| empty | 3 | - |" in printed
    assert (report / "wild.md").read_text() in printed
    outcomes = json.loads((report / "wild.json").read_text())["outcomes"]
    assert [o["file"] for o in outcomes] == [entry["file"] for entry in manifest]
    assert outcomes[-1]["refused"] is True
    assert outcomes[-1]["predicted"] is None
    for answered in outcomes[:-1]:
        assert answered["refused"] or 0.1 <= answered["confidence"] <= 1
    with pytest.raises(SystemExit):
        cli.main(["--out", str(folder), "--kinds", "pen,nonsense"])


def test_the_cli_generates_the_test_set_and_reports_to_bench_runs_by_default() -> None:
    generate = cli.parse_args(["--out", "sets/test"])
    assert generate.command == "generate"
    assert (generate.out, generate.split, generate.per_kind, generate.seed) == (
        Path("sets/test"),
        "test",
        150,
        0,
    )
    assert generate.kinds is None
    assert cli.parse_args(["--out", "o", "--set", "tune", "--kinds", "pen,empty"]).kinds == [
        "pen",
        "empty",
    ]
    scoring = cli.parse_args(["score", "sets/test"])
    assert scoring.command == "score"
    assert (scoring.folder, scoring.model, scoring.out, scoring.name) == (
        Path("sets/test"),
        ROOT / "models" / "mnist" / "4",  # the default version, trained for the wild kinds
        RUNS,
        "wild",
    )
