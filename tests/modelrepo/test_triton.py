"""What config.pbtxt says of a card-less Triton model: its spec, file, runtime and versions, and
every layout this server does not serve refused with what it does serve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelrepo.config import parse_config
from modelrepo.triton import (
    DESCRIPTION,
    SUPPORTED,
    UnsupportedModel,
    served_versions,
    triton_model,
)

LABELLED = """
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "dense_input" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "probs__0" data_type: TYPE_FP32 dims: [ 3 ] label_filename: "labels.txt" } ]
"""


def model_dir(tmp_path: Path, labels: str = "a\nb\nc\n") -> Path:
    directory = tmp_path / "Brought"
    directory.mkdir()
    (directory / "labels.txt").write_text(labels)
    return directory


def describe(tmp_path: Path, text: str, labels: str = "a\nb\nc\n"):  # type: ignore[no-untyped-def]
    return triton_model(parse_config(text), model_dir(tmp_path, labels), 2)


def test_a_labelled_output_makes_a_classifier_with_the_config_names(tmp_path: Path) -> None:
    described = describe(tmp_path, LABELLED)
    spec = described.spec
    assert (spec.name, spec.version, spec.task, spec.description) == (
        "Brought",
        2,
        "classification",
        DESCRIPTION,
    )
    assert (spec.input.name, spec.input.datatype, spec.input.shape) == (
        "dense_input",
        "FP32",
        [-1, 4],
    )
    assert (spec.output.name, spec.output.shape) == ("probs__0", [-1, 3])
    assert spec.output.class_names == ["a", "b", "c"]
    assert (described.format, described.file_name) == ("torchscript", "model.pt")


def test_without_labels_the_outputs_are_values(tmp_path: Path) -> None:
    spec = describe(tmp_path, LABELLED.replace(' label_filename: "labels.txt"', "")).spec
    assert spec.task == "regression"
    assert (spec.output.class_names, spec.output.value_name) == (None, "probs__0")


@pytest.mark.parametrize(
    ("text", "model_format", "file_name"),
    [
        (LABELLED, "torchscript", "model.pt"),
        (LABELLED + 'default_model_filename: "net.pt"', "torchscript", "net.pt"),
        (LABELLED.replace("pytorch_libtorch", "onnxruntime_onnx"), "onnxruntime", "model.onnx"),
        (
            LABELLED.replace('platform: "pytorch_libtorch"', 'backend: "pytorch"'),
            "torchscript",
            "model.pt",
        ),
        (
            LABELLED.replace('platform: "pytorch_libtorch"', 'backend: "onnxruntime"'),
            "onnxruntime",
            "model.onnx",
        ),
    ],
)
def test_the_platform_chooses_the_runtime_and_its_default_file(
    tmp_path: Path, text: str, model_format: str, file_name: str
) -> None:
    described = describe(tmp_path, text)
    assert (described.format, described.file_name) == (model_format, file_name)


def test_max_batch_size_0_takes_dims_with_the_batch(tmp_path: Path) -> None:
    text = LABELLED.replace("max_batch_size: 8", "max_batch_size: 0")
    text = text.replace("dims: [ 4 ]", "dims: [ -1, 4 ]").replace("dims: [ 3 ]", "dims: [ -1, 3 ]")
    spec = describe(tmp_path, text).spec
    assert (spec.input.shape, spec.output.shape) == ([-1, 4], [-1, 3])


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("TYPE_FP32 dims: [ 4 ]", "TYPE_INT64 dims: [ 4 ]", "; dense_input is TYPE_INT64"),
        ("TYPE_FP32 dims: [ 3 ]", "TYPE_FP16 dims: [ 3 ]", "; probs__0 is TYPE_FP16"),
        (
            "dims: [ 4 ]",
            "dims: [ 3, 28, 28 ]",
            "; dense_input has dims [3, 28, 28], this server needs [features]",
        ),
        (
            "dims: [ 4 ]",
            "dims: [ -1 ]",
            "; dense_input has dims [-1], this server needs [features]",
        ),
        ("dims: [ 4 ]", "dims: [ 4 ] reshape { shape: [ 2, 2 ] }", "; dense_input has a reshape"),
        (
            "max_batch_size: 8",
            "max_batch_size: 0",
            "; dense_input has dims [4], this server needs [-1, features] (max_batch_size 0)",
        ),
        (
            "input [",
            'input [ { name: "extra" data_type: TYPE_FP32 dims: [ 1 ] },',
            "; config.pbtxt has 2 inputs and 1 outputs",
        ),
    ],
)
def test_layouts_other_than_fp32_rows_are_refused_with_what_is_served(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    with pytest.raises(UnsupportedModel) as refused:
        describe(tmp_path, LABELLED.replace(old, new))
    assert str(refused.value).startswith(SUPPORTED + reason)
    assert SUPPORTED == "this server serves FP32 (N, features) -> (N, outputs) models"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            "pytorch_libtorch",
            "tensorflow_savedmodel",
            "platform 'tensorflow_savedmodel' is not served here: use pytorch_libtorch "
            "(TorchScript) or onnxruntime_onnx",
        ),
        (
            'platform: "pytorch_libtorch"',
            'backend: "python"',
            "backend 'python' is not served here: use pytorch or onnxruntime",
        ),
        ('platform: "pytorch_libtorch"', "", "config.pbtxt names no platform"),
        (
            "max_batch_size: 8",
            'max_batch_size: 8 default_model_filename: "../x.pt"',
            "default_model_filename must name a file of the version directory",
        ),
    ],
)
def test_platforms_and_files_not_served_here_are_refused(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    with pytest.raises(
        UnsupportedModel, match="^" + reason.replace("(", r"\(").replace(")", r"\)")
    ):
        describe(tmp_path, LABELLED.replace(old, new))


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ("a\nb\n", "labels.txt has 2 labels (one per line), but probs__0 has 3 outputs"),
        ("a\nb\nc\nd\n", "labels.txt has 4 labels (one per line), but probs__0 has 3 outputs"),
        ("a\nb\nc", None),  # no newline at the end: still three labels
    ],
)
def test_the_labels_must_name_every_output(tmp_path: Path, labels: str, reason: str | None) -> None:
    if reason is None:
        assert describe(tmp_path, LABELLED, labels).spec.output.class_names == ["a", "b", "c"]
        return
    with pytest.raises(
        UnsupportedModel, match=rf"^{reason.replace('(', '[(]').replace(')', '[)]')}$"
    ):
        describe(tmp_path, LABELLED, labels)


def test_a_missing_or_undecodable_label_file_says_so(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    (directory / "labels.txt").unlink()
    with pytest.raises(
        UnsupportedModel, match=r"^labels\.txt, the label file of probs__0, is missing$"
    ):
        triton_model(parse_config(LABELLED), directory, 1)
    (directory / "labels.txt").write_bytes(b"\xff\xfe\n")
    with pytest.raises(UnsupportedModel, match=r"^labels\.txt is not UTF-8 text$"):
        triton_model(parse_config(LABELLED), directory, 1)


@pytest.mark.parametrize(
    "name", ["../labels.txt", "/etc/passwd", "sub/../../labels.txt", "link.txt"]
)
def test_a_label_file_outside_the_model_directory_is_refused_without_its_path(
    tmp_path: Path, name: str
) -> None:
    directory = model_dir(tmp_path)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    os.symlink(tmp_path / "labels.txt", directory / "link.txt")
    text = LABELLED.replace('"labels.txt"', f'"{name}"')
    with pytest.raises(UnsupportedModel) as refused:
        triton_model(parse_config(text), directory, 1)
    assert str(refused.value) == "label_filename of probs__0 points outside the model's directory"


def test_a_label_file_in_a_subdirectory_of_the_model_is_read(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    (directory / "meta").mkdir()
    (directory / "meta" / "classes.txt").write_text("x\ny\nz\n")
    text = LABELLED.replace('"labels.txt"', '"meta/classes.txt"')
    spec = triton_model(parse_config(text), directory, 1).spec
    assert spec.output.class_names == ["x", "y", "z"]


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ("", [5]),  # Triton's default: the latest version
        ("version_policy: { latest: { num_versions: 2 } }", [3, 5]),
        ("version_policy: { latest: { num_versions: 9 } }", [1, 3, 5]),
        ("version_policy: { all: { } }", [1, 3, 5]),
        ("version_policy: { specific: { versions: [ 1, 3, 4 ] } }", [1, 3]),
    ],
)
def test_the_version_policy_chooses_as_triton_does(policy: str, served: list[int]) -> None:
    assert served_versions(parse_config(policy), [1, 3, 5]) == served
    assert served_versions(parse_config(policy), []) == []


def test_no_config_serves_the_latest_version_and_latest_0_is_refused() -> None:
    assert served_versions(None, [2, 1]) == [2]
    latest_none = parse_config("version_policy: { latest: { num_versions: 0 } }")
    with pytest.raises(
        UnsupportedModel, match=r"^version_policy latest needs num_versions of at least 1$"
    ):
        served_versions(latest_none, [1])


@pytest.mark.parametrize(
    ("labels", "names"),
    [
        ("a\x0cb\nc\u2028d\ne\x85f\n", ["a\x0cb", "c\u2028d", "e\x85f"]),  # one line each
        ("a\r\nb\r\nc\r\n", ["a", "b", "c"]),  # written on Windows
        ("\ufeffa\nb\nc\n", ["a", "b", "c"]),  # an editor's byte order mark
        ("a\n\nc\n", ["a", "", "c"]),  # an empty line is a label, as in Triton
        ('a,b\n c \n"d"', ["a,b", " c ", '"d"']),  # commas, spaces and quotes are the label's
    ],
)
def test_a_label_is_a_line_ended_by_a_newline_alone_as_triton_reads_it(
    tmp_path: Path, labels: str, names: list[str]
) -> None:
    directory = model_dir(tmp_path)
    (directory / "labels.txt").write_bytes(labels.encode())
    assert triton_model(parse_config(LABELLED), directory, 1).spec.output.class_names == names
