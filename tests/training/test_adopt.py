"""`python -m training adopt DIR`: a card for a card-less Triton model, which the service then
serves with its card (and its digest checked); bad input is one line and exit code 2."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from torch import nn

from modelrepo.card import ModelCard
from modelrepo.layout import sha256_of
from service.repository import ModelRegistry
from service.settings import Settings
from tests.conftest import run_training
from tests.triton_models import (
    CONFIG,
    FEATURES,
    INPUT,
    LABELS,
    OUTPUT,
    ROWS,
    write_onnx_model,
    write_torchscript,
    write_triton_model,
)
from training.__main__ import main, parse_args


def read_card(version_dir: Path) -> ModelCard:
    return ModelCard.model_validate_json((version_dir / "card.json").read_bytes())


def test_adopt_writes_a_card_the_service_then_serves_and_checks(tmp_path: Path) -> None:
    model_dir = write_triton_model(
        tmp_path / "pets", versions=(1, 2), config=CONFIG + "version_policy { all {} }"
    )
    done = run_training("adopt", model_dir, "--description", "Pets from four features")
    assert done.stderr == ""
    (line,) = done.stdout.splitlines()
    assert line.startswith("pets version 2: 4 features -> 3 outputs (classification, 3 classes)")
    card = read_card(model_dir / "2")
    assert (card.name, card.version, card.task) == ("pets", 2, "classification")
    assert card.description == "Pets from four features"
    assert (card.input.name, card.input.shape, card.output.name) == (INPUT, [-1, FEATURES], OUTPUT)
    assert card.output.class_names == list(LABELS)
    assert card.sha256 == sha256_of(model_dir / "2" / "model.pt")
    assert card.files == {"model.pt": card.sha256}
    assert (card.metrics, card.bars, card.dataset, card.training) == ({}, [], None, None)
    assert not (model_dir / "1" / "card.json").exists()

    async def scenario() -> None:
        registry = ModelRegistry(Settings(models=tmp_path, device="cpu"))
        await registry.start()
        try:
            adopted, without = registry.get("pets"), registry.get("pets", "1")
            assert (adopted.has_card, without.has_card) == (True, False)
            assert adopted.card == card
            assert (await adopted.infer(ROWS, 30)).argmax(axis=1).tolist() == [0, 1, 2]
            with (model_dir / "2" / "model.pt").open("ab") as file:
                file.write(b"\0")  # the card's digest now guards the file
            await registry.load("pets")
            assert registry.entry("pets").failed[2].startswith("sha256 of model.pt is ")
        finally:
            await registry.stop()

    asyncio.run(scenario())


def test_adopt_takes_the_version_asked_for_and_values_without_labels(tmp_path: Path) -> None:
    config = CONFIG.replace(' label_filename: "labels.txt"', "")
    model_dir = write_triton_model(tmp_path / "scores", versions=(1, 2), config=config, labels=None)
    assert main(["adopt", str(model_dir), "--version", "1"]) == 0
    card = read_card(model_dir / "1")
    assert (card.task, card.output.value_name, card.output.class_names) == (
        "regression",
        OUTPUT,
        None,
    )
    assert card.description == "served from config.pbtxt: this model has no card"
    assert not (model_dir / "2" / "card.json").exists()


class Wide(nn.Module):
    def forward(self, rows):  # type: ignore[no-untyped-def]
        return rows.repeat(1, 2)


def corrupt(model_dir: Path) -> None:
    (model_dir / "1" / "model.pt").write_bytes(b"not a TorchScript archive")


BAD: list[tuple[str, Callable[[Path], object], list[str], str]] = [
    ("no config", lambda d: (d / "config.pbtxt").unlink(), [], "has no config.pbtxt"),
    (
        "bad config",
        lambda d: (d / "config.pbtxt").write_text("nonsense {"),
        [],
        "config.pbtxt is invalid: ",
    ),
    ("no such version", lambda d: None, ["--version", "9"], "pets has no version 9"),
    (
        "has a card",
        lambda d: (d / "1" / "card.json").write_text("{}"),
        [],
        "pets version 1 already has a card.json",
    ),
    (
        "int64",
        lambda d: (d / "config.pbtxt").write_text(
            CONFIG.replace("TYPE_FP32 dims: [ 4 ]", "TYPE_INT64 dims: [ 4 ]")
        ),
        [],
        "this server serves FP32 (N, features) -> (N, outputs) models; input__0 is TYPE_INT64",
    ),
    (
        "labels",
        lambda d: (d / "labels.txt").write_text("cat\n"),
        [],
        "labels.txt has 1 labels (one per line), but output__0 has 3 outputs",
    ),
    (
        "no model.pt",
        lambda d: (d / "1" / "model.pt").unlink(),
        [],
        "pets version 1 has no model.pt",
    ),
    ("corrupt", corrupt, [], "a forward pass of model.pt failed: "),
    (
        "wrong width",
        lambda d: write_torchscript(d / "1" / "model.pt", module=Wide()),
        [],
        "model.pt answers [2, 8] for 2 rows of 4 features; config.pbtxt declares [2, 3]",
    ),
]


@pytest.mark.parametrize(
    ("setup", "options", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: Callable[[Path], object],
    options: list[str],
    message: str,
) -> None:
    model_dir = write_triton_model(tmp_path / "pets")
    setup(model_dir)
    assert main(["adopt", str(model_dir), *options]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("mlp-train adopt: error: ")
    assert message in line


def test_models_a_card_cannot_describe_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = write_onnx_model(tmp_path / "flowers")
    assert main(["adopt", str(onnx)]) == 2
    assert (
        "this model is model.onnx for onnxruntime, which the service serves without a card"
        in capsys.readouterr().err
    )
    upper = write_triton_model(tmp_path / "Pets")
    assert main(["adopt", str(upper)]) == 2
    assert "rename the directory 'Pets'" in capsys.readouterr().err
    shutil.rmtree(upper)


def test_the_parser_takes_the_adopt_options_and_refuses_others() -> None:
    args = parse_args(["adopt", "models/pets", "--description", "d", "--version", "3"])
    assert (args.dir, args.description, args.version) == (Path("models/pets"), "d", 3)
    with pytest.raises(SystemExit) as refused:
        parse_args(["adopt", "models/pets", "--version", "0"])
    assert refused.value.code == 2


def test_the_command_line_refuses_a_directory_that_is_no_model_in_one_line(tmp_path: Path) -> None:
    done = run_training("adopt", tmp_path / "nothing", check=False)
    assert (done.returncode, done.stdout) == (2, "")
    (line,) = done.stderr.splitlines()
    assert line.endswith("has no config.pbtxt: not a Triton model directory")
