"""`python -m training adopt DIR`: a card for a Triton model that came without one.

DIR is a model directory of a Triton repository (`config.pbtxt`, `<version>/model.pt`, the
label file if any). The card records what config.pbtxt says (tensor names and dims, the class
names from `label_filename`), the sha256 of `model.pt`, the description given, and that a
forward pass at the configuration's dims ran and answered its declared shape. The model was
trained elsewhere: the card has no metrics, bars, dataset or training run. From then on the
service checks the model file against the card's digest, as for every model trained here.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch
from pydantic import ValidationError

from modelrepo import torchscript as jit
from modelrepo.card import NAME_PATTERN, ModelCard
from modelrepo.config import ConfigError, read_config
from modelrepo.layout import (
    CARD_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    sha256_of,
    versions,
    write_atomically,
)
from modelrepo.triton import TritonModel, UnsupportedModel, served_versions, triton_model
from training.cli import OneLineParser, positive_int

PROG = "mlp-train adopt"
CHECK_ROWS = 2


class AdoptError(Exception):
    """Why no card was written (one line, for the user)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:

    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a model directory of a Triton repository")
    parser.add_argument(
        "--description", default="", help="what the model does, for its card (default: none)"
    )
    parser.add_argument(
        "--version",
        type=positive_int,
        help="the version to adopt (default: the highest one config.pbtxt's policy serves)",
    )
    return parser.parse_args(argv)


def adopt(model_dir: Path, description: str = "", version: int | None = None) -> Path:
    """Write `card.json` into one version of `model_dir`; its path. AdoptError says why not."""
    config = read_model_config(model_dir)
    version = version or latest_served(model_dir, config)
    version_dir = model_dir / str(version)
    if not version_dir.is_dir():
        raise AdoptError(f"{model_dir.name} has no version {version}")
    if (version_dir / CARD_FILE).exists():
        raise AdoptError(f"{model_dir.name} version {version} already has a {CARD_FILE}")
    described = describe(config, model_dir, version)
    model_path = version_dir / MODEL_FILE
    if not model_path.is_file():
        raise AdoptError(f"{model_dir.name} version {version} has no {MODEL_FILE}")
    check_forward_pass(model_path, described)
    card = build_card(described, sha256_of(model_path), description or described.spec.description)
    path = version_dir / CARD_FILE
    try:
        write_atomically(path, card.model_dump_json(indent=2) + "\n")
    except OSError as error:
        raise AdoptError(f"{CARD_FILE} cannot be written: {error.strerror}") from None
    return path


def read_model_config(model_dir: Path):  # type: ignore[no-untyped-def]
    if not (model_dir / CONFIG_FILE).is_file():
        raise AdoptError(f"{model_dir} has no {CONFIG_FILE}: not a Triton model directory")
    try:
        return read_config(model_dir / CONFIG_FILE)
    except (ConfigError, OSError, UnicodeDecodeError) as error:
        raise AdoptError(f"{CONFIG_FILE} is invalid: {error}") from None


def latest_served(model_dir: Path, config) -> int:  # type: ignore[no-untyped-def]
    try:
        served = served_versions(config, versions(model_dir))
    except UnsupportedModel as error:
        raise AdoptError(f"{CONFIG_FILE} is invalid: {error}") from None
    if not served:
        raise AdoptError(f"{model_dir.name} has no version that {CONFIG_FILE} serves")
    return served[-1]


def describe(config, model_dir: Path, version: int) -> TritonModel:  # type: ignore[no-untyped-def]
    """What config.pbtxt says, for a TorchScript `model.pt`: the file a card's digest names."""
    try:
        described = triton_model(config, model_dir, version)
    except UnsupportedModel as error:
        raise AdoptError(str(error)) from None
    if (described.format, described.file_name) != ("torchscript", MODEL_FILE):
        raise AdoptError(
            f"a card records TorchScript's {MODEL_FILE}; this model is {described.file_name} "
            f"for {described.format}, which the service serves without a card"
        )
    return described


def check_forward_pass(model_path: Path, described: TritonModel) -> None:
    """The model runs on rows of the configured width and answers the configured outputs."""
    spec = described.spec
    rows = torch.zeros(CHECK_ROWS, spec.input.features)
    try:
        with torch.inference_mode():
            answer = jit.load(model_path, "cpu")(rows)
    except Exception as error:  # a corrupt file, or a model that fails on these rows
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AdoptError(f"a forward pass of {MODEL_FILE} failed: {reason}") from None
    expected = (CHECK_ROWS, spec.output.width)
    if not isinstance(answer, torch.Tensor) or tuple(answer.shape) != expected:
        got = list(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__
        raise AdoptError(
            f"{MODEL_FILE} answers {got} for {CHECK_ROWS} rows of {spec.input.features} "
            f"features; {CONFIG_FILE} declares {list(expected)}"
        )


def build_card(described: TritonModel, digest: str, description: str) -> ModelCard:
    spec = described.spec
    if not re.fullmatch(NAME_PATTERN, spec.name):
        raise AdoptError(
            f"a card names its model in lowercase letters, digits, _ and -, from a letter: "
            f"rename the directory {spec.name!r}"
        )
    try:
        return ModelCard(
            **spec.model_dump(exclude={"description"}),
            description=description,
            metrics={},
            bars=[],
            sha256=digest,
            files={MODEL_FILE: digest},
            torch_version=torch.__version__,
            created_at=datetime.now(UTC),
        )
    except ValidationError as error:
        problem = error.errors()[0]
        raise AdoptError(f"no card can be written: {problem['loc'][0]}: {problem['msg']}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path = adopt(args.dir, args.description, args.version)
    except AdoptError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    card = ModelCard.model_validate_json(path.read_bytes())
    kind = f"{len(card.output.class_names)} classes" if card.output.class_names else "values"
    print(
        f"{card.name} version {card.version}: {card.input.features} features -> "
        f"{card.output.width} outputs ({card.task}, {kind}), sha256 {card.sha256[:12]}... "
        f"-> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
