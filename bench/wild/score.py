"""Score a wild set the way the service would answer it: every picture through the service's own
upload preprocessing (`ImagePreparer.prepare_one`) and a bundled mnist version, in process.

Per kind: for digit kinds the accuracy (a 422 "no digit found" counts as wrong), for the others
the share refused with that 422; for both the share flagged `not_a_digit` (top probability
below the service's default `not_a_digit_below`) or refused, the share answered wrongly with
confidence >= 0.9 (every answer to a non-digit is wrong), and the most common confusions.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.wild.kinds import KINDS
from service.codecs.uploads import ImagePreparer, Upload
from service.errors import InvalidInput
from service.runtime import Runtime, open_runtime
from service.settings import Settings

CONFIDENT = 0.9
NOT_A_DIGIT_BELOW = Settings().not_a_digit_below
NO_DIGIT = "no digit found"
BATCH = 256


@dataclass(frozen=True)
class Outcome:
    """What the service made of one picture: refused (422 no digit), or a digit and its
    probability."""

    file: str
    kind: str
    label: int | None
    refused: bool
    predicted: int | None = None
    confidence: float | None = None

    @property
    def correct(self) -> bool:
        return self.label is not None and self.predicted == self.label

    @property
    def flagged(self) -> bool:
        """Refused, or answered with not_a_digit as the service's default threshold says."""
        return self.refused or (self.confidence or 0) < NOT_A_DIGIT_BELOW

    @property
    def confidently_wrong(self) -> bool:
        return not self.refused and not self.correct and (self.confidence or 0) >= CONFIDENT


def open_model(version_dir: Path) -> Runtime:
    """The version's ONNX graph if it has one (no torch needed), else its TorchScript file."""
    onnx = version_dir / "model.onnx"
    if onnx.exists():
        return open_runtime("onnxruntime", onnx, "cpu", BATCH, 784, threads=1)
    return open_runtime("torchscript", version_dir / "model.pt", "cpu", BATCH, 784, threads=1)


def prepare(preparer: ImagePreparer, path: Path) -> np.ndarray | None:
    """The row the service would give the model, or None where it answers 422 no digit."""
    try:
        return preparer.prepare_one(Upload(path.name, path.read_bytes()), with_png=False).row
    except InvalidInput as error:
        if str(error).startswith(NO_DIGIT):
            return None
        raise


def score_set(folder: Path, version_dir: Path) -> list[Outcome]:
    """Every picture of `folder`'s manifest through preprocessing and the model."""
    manifest = json.loads((folder / "manifest.json").read_text())
    defaults = Settings()
    preparer = ImagePreparer(1, defaults.max_image_pixels, defaults.max_request_pixels)
    try:
        rows = [prepare(preparer, folder / entry["file"]) for entry in manifest]
    finally:
        preparer.close()
    kept = [row for row in rows if row is not None]
    model = open_model(version_dir)
    probabilities = (
        np.vstack(
            [model.run_batch([np.stack(kept[i : i + BATCH])]) for i in range(0, len(kept), BATCH)]
        )
        if kept
        else np.empty((0, 10), np.float32)
    )
    answers = iter(probabilities)
    outcomes = []
    for entry, row in zip(manifest, rows, strict=True):
        common = {"file": entry["file"], "kind": entry["kind"], "label": entry["label"]}
        if row is None:
            outcomes.append(Outcome(**common, refused=True))
            continue
        p = next(answers)
        best = int(p.argmax())
        outcomes.append(Outcome(**common, refused=False, predicted=best, confidence=float(p[best])))
    return outcomes


def summarise(outcomes: list[Outcome]) -> dict[str, dict[str, object]]:
    """Per kind, in the generator's order, then "all digits" and "all non-digits"."""
    by_kind: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_kind.setdefault(outcome.kind, []).append(outcome)
    ordered = [kind for kind in KINDS if kind in by_kind] + sorted(set(by_kind) - set(KINDS))
    summary = {kind: figures(by_kind[kind]) for kind in ordered}
    digits = [o for o in outcomes if o.label is not None]
    others = [o for o in outcomes if o.label is None]
    if digits:
        summary["all digits"] = figures(digits)
    if others:
        summary["all non-digits"] = figures(others)
    return summary


def figures(outcomes: list[Outcome]) -> dict[str, object]:
    count = len(outcomes)
    digit = outcomes[0].label is not None
    confusions = Counter(
        f"{o.label if digit else 'x'}->{'422' if o.refused else o.predicted}"
        for o in outcomes
        if not o.correct
    )
    return {
        "pictures": count,
        "digit": digit,
        "accuracy": sum(o.correct for o in outcomes) / count if digit else None,
        "refused": sum(o.refused for o in outcomes) / count,
        "flagged": sum(o.flagged for o in outcomes) / count,
        "confident_wrong": sum(o.confidently_wrong for o in outcomes) / count,
        "confusions": confusions.most_common(4),
    }


def percent(value: object) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"  # type: ignore[arg-type]


def markdown(summary: dict[str, dict[str, object]]) -> str:
    lines = [
        "| kind | pictures | accuracy | refused (422) | flagged or refused | wrong with p >= 0.9 "
        "| most common errors |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, f in summary.items():
        errors = ", ".join(f"{pair} ({n})" for pair, n in f["confusions"])  # type: ignore[attr-defined]
        lines.append(
            f"| {kind} | {f['pictures']} | {percent(f['accuracy'])} | {percent(f['refused'])} "
            f"| {percent(f['flagged'])} | {percent(f['confident_wrong'])} | {errors or '-'} |"
        )
    return "\n".join(lines) + "\n"


def write_report(outcomes: list[Outcome], out: Path, name: str = "wild") -> str:
    """OUT/<name>.md (the table) and OUT/<name>.json (the summary and every outcome)."""
    summary = summarise(outcomes)
    table = markdown(summary)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(table)
    report = {"summary": summary, "outcomes": [asdict(o) for o in outcomes]}
    (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    return table
