"""The training CLI, run as a user runs it, on a tiny budget."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from modelrepo import torchscript as jit
from modelrepo.card import ModelCard
from tests.conftest import MNIST_FIXTURE, TINY_BUDGET, run_training
from training import synthetic
from training.__main__ import main, parse_args

TASK_NAMES = ["binary", "iris", "mnist", "regression"]


def load_card(version_dir: Path) -> ModelCard:
    return ModelCard.model_validate_json((version_dir / "card.json").read_text())


@pytest.mark.parametrize("name", TASK_NAMES)
def test_cli_writes_a_complete_version(tiny_repo: Path, name: str) -> None:
    version_dir = tiny_repo / name / "1"
    files = ["card.json", "curves.png", "model.onnx", "model.pt"]
    assert sorted(p.name for p in version_dir.iterdir()) == files
    card = load_card(version_dir)
    assert (card.name, card.version) == (name, 1)
    assert card.sha256 == hashlib.sha256((version_dir / "model.pt").read_bytes()).hexdigest()
    assert card.files == {
        file: hashlib.sha256((version_dir / file).read_bytes()).hexdigest()
        for file in ("model.pt", "model.onnx", "curves.png")
    }
    assert card.input.name == "INPUT__0"
    assert card.output.name == "OUTPUT__0"
    assert card.input.datatype == "FP32"
    assert card.input.shape[0] == -1
    assert card.torch_version == torch.__version__
    assert card.training.seed == 0
    assert card.training.epochs == 1
    assert card.dataset.sizes["test"] > 0
    assert all(bar.metric in card.metrics for bar in card.bars)
    assert (version_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mnist_card_documents_the_image_convention(tiny_repo: Path) -> None:
    card = load_card(tiny_repo / "mnist" / "1")
    assert card.input.shape == [-1, 784]
    assert card.input.image is not None
    assert (card.input.image.height, card.input.image.width) == (28, 28)
    assert card.input.image.polarity == "white_on_black"
    assert card.output.class_names == [str(digit) for digit in range(10)]
    # the fixture's 275 digits and, in proportion, drawn digits and pictures of no digit
    added = round(synthetic.DIGIT_SHARE * 275) + 3 * -(-round(synthetic.NON_DIGIT_SHARE * 275) // 3)
    assert card.dataset.sizes == {"train": 275 + added, "validation": 25, "test": 200}
    assert "augmented on the fly" in card.dataset.description  # the CLI's default
    assert "pictures of no digit" in card.dataset.description


@pytest.mark.parametrize(("flag", "augment"), [([], True), (["--no-augment"], False)])
def test_augment_flag(flag: list[str], augment: bool) -> None:
    assert parse_args(["mnist", *flag]).augment is augment


def test_iris_card_names_features_and_classes(tiny_repo: Path) -> None:
    card = load_card(tiny_repo / "iris" / "1")
    assert card.output.class_names == ["setosa", "versicolor", "virginica"]
    assert card.input.feature_names is not None
    assert len(card.input.feature_names) == 4
    assert {"test_accuracy", "all_accuracy"} <= set(card.metrics)


def _check_repository(repo: Path, name: str) -> None:
    """config.pbtxt, parsed by Triton's own protobuf, agrees with every card and model."""
    config = text_format.Parse(
        (repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert config.name == name
    assert config.platform == "pytorch_libtorch"
    assert config.max_batch_size > 0
    versions = sorted(
        (p for p in (repo / name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )
    assert versions
    for version_dir in versions:
        card = load_card(version_dir)
        (tensor_in,), (tensor_out,) = config.input, config.output
        assert tensor_in.name == card.input.name
        assert tensor_out.name == card.output.name
        assert model_config_pb2.DataType.Name(tensor_in.data_type) == f"TYPE_{card.input.datatype}"
        assert (
            model_config_pb2.DataType.Name(tensor_out.data_type) == f"TYPE_{card.output.datatype}"
        )
        assert list(tensor_in.dims) == card.input.shape[1:]
        assert list(tensor_out.dims) == card.output.shape[1:]
        output = jit.load(version_dir / "model.pt")(torch.rand(3, *tensor_in.dims))
        assert list(output.shape) == [3, *tensor_out.dims]


@pytest.mark.parametrize("name", TASK_NAMES)
def test_tiny_repository_is_servable_by_triton(tiny_repo: Path, name: str) -> None:
    _check_repository(tiny_repo, name)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_bundled_repository_is_servable_by_triton_and_passes_its_bars(
    bundled_repo: Path, name: str
) -> None:
    _check_repository(bundled_repo, name)
    card = load_card(bundled_repo / name / "1")
    assert all(bar.passed for bar in card.bars), card.bars


def test_summary_line_and_never_overwrite(tmp_path: Path) -> None:
    first = run_training("iris", "--repo", tmp_path, *TINY_BUDGET)
    second = run_training("iris", "--repo", tmp_path, *TINY_BUDGET)
    assert "iris: test_accuracy=" in first.stdout
    assert "(bar >= 0.96)" in first.stdout
    assert str(tmp_path / "iris" / "1") in first.stdout
    assert str(tmp_path / "iris" / "2") in second.stdout
    assert load_card(tmp_path / "iris" / "1").version == 1
    assert load_card(tmp_path / "iris" / "2").version == 2
    assert first.stderr == ""  # --quiet, and no TorchScript deprecation noise


def test_same_seed_gives_same_metrics(tmp_path: Path) -> None:
    args = ["binary", "--repo", str(tmp_path), *TINY_BUDGET]
    assert main(args) == 0
    assert main(args) == 0
    first, second = (load_card(tmp_path / "binary" / v) for v in ("1", "2"))
    assert first.metrics == second.metrics
    assert first.sha256 == second.sha256


def test_strict_fails_when_a_bar_is_missed(tmp_path: Path) -> None:
    args = ["mnist", "--repo", str(tmp_path), "--data-dir", str(MNIST_FIXTURE), *TINY_BUDGET]
    assert main([*args, "--strict"]) == 1  # one epoch on 275 digits cannot reach 98%
    card = load_card(tmp_path / "mnist" / "1")
    assert card.bars[0].passed is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["iris", "--epochs", "0"], "must be a positive integer"),
        (["iris", "--lr", "-1"], "must be a positive number"),
        (["iris", "--device", "mps"], "unknown device 'mps'"),
        (["iris", "--device", "banana"], "unknown device"),
    ],
)
def test_bad_option_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_training(*args, "--repo", tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dataset_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_training(
        "mnist",
        "--data-dir",
        tmp_path / "nowhere",
        "--repo",
        tmp_path,
        "--no-download",
        "--quiet",
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "MNIST not found under" in result.stderr
    assert "MNIST/raw" in result.stderr
    assert not (tmp_path / "mnist").exists() or not any((tmp_path / "mnist").iterdir())


def test_card_json_is_plain_json(tiny_repo: Path) -> None:
    raw = json.loads((tiny_repo / "binary" / "1" / "card.json").read_text())
    assert raw["task"] == "classification"
    assert raw["output"]["shape"] == [-1, 2]
