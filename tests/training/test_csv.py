"""`python -m training csv`: CSV files the tests write, trained, published and refused."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from modelrepo.card import ModelCard
from tests.conftest import MODELS_DIR, ROOT, run_training
from training.__main__ import main, parse_args
from training.tabular import BadData, decide_target, read_table, rows_needed

FAST = ["--epochs", "3", "--seed", "0", "--quiet", "--device", "cpu"]
COLORS = ("blue", "green", "red")


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def color_rows(per_class: int = 10) -> list[str]:
    """Three well-separated classes named by text, two numeric features."""
    rng = np.random.default_rng(0)
    rows = []
    for index, color in enumerate(COLORS):
        for a, b in rng.normal(index * 5.0, 0.5, size=(per_class, 2)):
            rows.append(f"{a:.3f},{b:.3f},{color}")
    return rows


def load_card(version_dir: Path) -> ModelCard:
    return ModelCard.model_validate_json((version_dir / "card.json").read_text())


def train_csv(*args: str | Path) -> int:
    return main(["csv", *map(str, args), *FAST])


def test_text_labels_train_a_classifier_with_its_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "colors.csv", "width,height,color", color_rows())
    repo = tmp_path / "repo"
    assert train_csv(data, "--target", "color", "--name", "colors", "--repo", repo) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "colors.csv: classification: target 'color' holds text: 3 classes " + (
        "(blue, green, red)"
    )
    assert out[-1].startswith("colors: test_accuracy=")
    assert "(baseline 0.3333, always the majority class 'blue')" in out[-1]
    assert out[-1].endswith(f"-> {repo / 'colors' / '1'}")
    version = repo / "colors" / "1"
    assert sorted(p.name for p in version.iterdir()) == [
        "card.json",
        "curves.png",
        "model.onnx",
        "model.pt",
    ]
    card = load_card(version)
    assert card.task == "classification"
    assert card.input.feature_names == ["width", "height"]
    assert card.output.class_names == list(COLORS)
    assert (card.dataset.source, card.dataset.target) == ("colors.csv", "color")
    assert card.dataset.sizes == {"train": 21, "validation": 3, "test": 6}
    assert {"test_accuracy", "validation_accuracy", "test_loss"} <= set(card.metrics)
    (bar,) = card.bars
    assert (bar.metric, bar.op, bar.threshold) == ("test_accuracy", ">=", pytest.approx(1 / 3))
    assert (repo / "colors" / "config.pbtxt").is_file()


def test_regression_names_its_value_and_sees_the_mean_as_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    y = x @ [1.5, -2.0, 0.5] + 10.0
    rows = [f"{a:.4f},{b:.4f},{c:.4f},{t:.4f}" for (a, b, c), t in zip(x, y, strict=True)]
    data = write_csv(tmp_path / "prices.csv", "a,b,c,price", rows)
    repo = tmp_path / "repo"
    assert train_csv(data, "--target", "price", "--name", "prices", "--repo", repo) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "prices.csv: regression: target 'price' holds numbers that are not all integers"
    )
    assert "(baseline " in out[-1]
    assert ", always the mean " in out[-1]
    card = load_card(repo / "prices" / "1")
    assert card.task == "regression"
    assert card.output.value_name == "price"
    assert card.output.shape == [-1, 1]
    assert card.input.feature_names == ["a", "b", "c"]
    # The demo's form starts from the training rows' mean (the normalisation's own).
    assert len(card.input.example) == 3
    assert all(abs(value) < 1 for value in card.input.example)  # x ~ N(0, 1), 28 rows
    assert (card.bars[0].metric, card.bars[0].op) == ("test_mse", "<=")
    # The values are in the target's units, as the CSV wrote them (the scale is in the module).
    session = onnxruntime.InferenceSession(str(repo / "prices" / "1" / "model.onnx"))
    (values,) = session.run(None, {"INPUT__0": x[:4].astype(np.float32)})
    assert values.shape == (4, 1)


def test_the_packaged_wine_csv_reads_as_the_readme_shows() -> None:
    wine = resources.files("training").joinpath("datasets/wine.csv")
    with resources.as_file(wine) as path:
        table = read_table(path, "cultivar")
    target = decide_target(table, "auto")
    assert (table.source, len(table.lines), len(table.feature_names)) == ("wine.csv", 178, 13)
    assert table.feature_names[0] == "alcohol"
    assert target.class_names == ("class_0", "class_1", "class_2")
    assert target.y.bincount().tolist() == [59, 71, 48]


@pytest.mark.parametrize(
    ("cells", "task", "kind", "classes"),
    [
        (["0", "1", "2"] * 7, "auto", "classification", ("0", "1", "2")),
        (["1", "1.0", "2"] * 7, "auto", "classification", ("1", "2")),
        ([str(i) for i in range(21)], "auto", "regression", None),
        ([f"{i / 2}" for i in range(21)], "auto", "regression", None),
        ([f"{i % 3 / 2}" for i in range(21)], "classification", "classification", None),
        (["0", "1"] * 7, "regression", "regression", None),
    ],
)
def test_auto_takes_text_and_few_integers_for_classes(
    tmp_path: Path, cells: list[str], task: str, kind: str, classes: tuple[str, ...] | None
) -> None:
    rows = [f"{i},{cell}" for i, cell in enumerate(cells)]
    table = read_table(write_csv(tmp_path / "t.csv", "x,y", rows), "y")
    target = decide_target(table, task)  # type: ignore[arg-type]
    assert target.kind == kind
    if classes is not None:
        assert target.class_names == classes


def test_a_split_needs_seven_rows_per_class() -> None:
    assert rows_needed() == 7


GOOD_ROWS = [f"{i},{i % 2},{'ab'[i % 2]}" for i in range(14)]
BAD_DATA = [
    pytest.param("", ["--target", "y"], "d.csv is empty", id="empty"),
    pytest.param("a,b,y\n", ["--target", "y"], "d.csv has a header but no rows", id="header-only"),
    pytest.param(
        "a,b,y\n1,2,x\n3,4\n",
        ["--target", "y"],
        "d.csv line 3 has 2 fields where the header has 3",
        id="ragged",
    ),
    pytest.param(
        "a,b,y\n" + "\n".join(GOOD_ROWS),
        ["--target", "z"],
        "no column 'z' (columns: a, b, y)",
        id="unknown-target",
    ),
    pytest.param(
        "a;b;y\n1;2;x\n",
        ["--target", "y"],
        "no column 'y' (columns: a;b;y); the file seems separated by semicolons: save it "
        "comma-separated",
        id="semicolons",
    ),
    pytest.param(
        "a\tb\ty\n1\t2\tx\n",
        ["--target", "y"],
        "the file seems separated by tabs: save it comma-separated",
        id="tabs",
    ),
    pytest.param(
        "a,b,y\n" + "\n".join(f"{(-1) ** i * 3e38},{i},{'ab'[i % 2]}" for i in range(14)),
        ["--target", "y"],
        "column 'a' holds values too large to average in float32 (up to 3e+38, its sum beyond "
        "3.4e+38); rescale it (divide it by a power of ten)",
        id="feature-beyond-float32-sums",
    ),
    pytest.param(
        "a,b,y\n" + "\n".join(f"{3e38 - i * 1e36},{i},{'ab'[i % 2]}" for i in range(14)),
        ["--target", "y"],
        "column 'a' holds values too large to average in float32",
        id="feature-one-sided-beyond-float32-sums",
    ),
    pytest.param(
        "a,y\n" + "\n".join(f"{i},{(i - 15) * 2.2e37}" for i in range(31)),
        ["--target", "y"],
        "column 'y' holds values too large to average in float32",
        id="target-beyond-float32-sums",
    ),
    pytest.param(
        "a,y\n" + "\n".join(f"{i},{i * 1e18 + 0.5}" for i in range(31)),
        ["--target", "y"],
        "the target 'y' spans 3e+19, too wide for its mean squared error in float32 (at most "
        "1.66e+18 over 31 rows); rescale it",
        id="target-squares-beyond-float32",
    ),
    pytest.param(
        "a,a,y\n1,2,x\n",
        ["--target", "y"],
        "the header names a more than once",
        id="repeated-column",
    ),
    pytest.param(
        "a,,y\n1,2,x\n",
        ["--target", "y"],
        "column 2 of the header has no name",
        id="unnamed-column",
    ),
    pytest.param(
        "y\nx\n", ["--target", "y"], "no feature columns beside the target 'y'", id="no-features"
    ),
    pytest.param(
        "a,b,c,y\n" + "\n".join(f"{i},red,{i}x,{'ab'[i % 2]}" for i in range(14)),
        ["--target", "y"],
        "'b' (line 2: 'red'), 'c' (line 2: '0x') do not; encode categories as numbers",
        id="text-features",
    ),
    pytest.param(
        "a,b,y\n1,,p\n2,NA,q\n3,4,\n" + "\n".join(GOOD_ROWS),
        ["--target", "y"],
        "missing values: 'b' on lines 2, 3; 'y' on line 4; fill them in or drop those rows",
        id="missing-values",
    ),
    pytest.param(
        "a,b,y\n1,inf,p\n2,3,q\n", ["--target", "y"], "'b' (line 2: 'inf') do not", id="infinite"
    ),
    pytest.param(
        "a,b,y\n" + "\n".join(f"{i},{i},{'ab'[i % 2] if i < 13 else 'c'}" for i in range(14)),
        ["--target", "y"],
        "every class needs at least 7 (one each for train, validation and test), and "
        "'b' has 6, 'c' has 1",
        id="class-too-small",
    ),
    pytest.param(
        "a,y\n" + "\n".join(f"{i},{i / 3}" for i in range(6)),
        ["--target", "y"],
        "6 rows are too few to split: a regression needs at least 7",
        id="too-few-rows",
    ),
    pytest.param(
        "a,y\n" + "\n".join(f"{i},same" for i in range(10)),
        ["--target", "y"],
        "the target 'y' has the single class 'same'; a classification needs at least two",
        id="single-class",
    ),
    pytest.param(
        "a,y\n" + "\n".join(f"{i},2.5" for i in range(10)),
        ["--target", "y", "--task", "regression"],
        "the target 'y' is 2.5 on every row; there is nothing to learn",
        id="constant-target",
    ),
    pytest.param(
        "a,b,y\n" + "\n".join(GOOD_ROWS),
        ["--target", "y", "--task", "regression"],
        "a regression needs a numeric target, and 'y' holds 'a' on line 2",
        id="text-regression-target",
    ),
    pytest.param(
        'a,y\n1,"x\n', ["--target", "y"], "d.csv line 2: unexpected end of data", id="open-quote"
    ),
]


@pytest.mark.parametrize(("text", "args", "message"), BAD_DATA)
def test_bad_data_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, args: list[str], message: str
) -> None:
    data = tmp_path / "d.csv"
    data.write_text(text)
    repo = tmp_path / "repo"
    assert main(["csv", str(data), *args, "--name", "d", "--repo", str(repo), *FAST]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("mlp-train csv: error: ")
    assert message in line
    assert not repo.exists()


def test_a_file_that_is_not_there_or_not_text(tmp_path: Path) -> None:
    with pytest.raises(BadData, match=r"missing.csv: No such file or directory"):
        read_table(tmp_path / "missing.csv", "y")
    (tmp_path / "latin1.csv").write_bytes("a,y\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(BadData, match=r"^latin1.csv is not UTF-8 text$"):
        read_table(tmp_path / "latin1.csv", "y")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "y", "--name", "Wine"], "'Wine' is not a model name"),
        (["--target", "y", "--name", "../x"], "'../x' is not a model name"),
        (["--name", "d"], "the following arguments are required: --target"),
        (["--target", "y", "--name", "d", "--task", "cluster"], "invalid choice: 'cluster'"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["csv", str(tmp_path / "d.csv"), *args])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert message in line


def test_a_name_taken_by_a_model_of_other_dims_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "colors.csv", "width,height,color", color_rows())
    (tmp_path / "iris").mkdir()
    shutil.copy(MODELS_DIR / "iris" / "config.pbtxt", tmp_path / "iris" / "config.pbtxt")
    assert train_csv(data, "--target", "color", "--name", "iris", "--repo", tmp_path) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "already holds a model with inputs [[4]] and outputs [[3]]" in line
    assert "choose another name" in line
    assert sorted(p.name for p in (tmp_path / "iris").iterdir()) == ["config.pbtxt"]


def test_the_training_cli_hands_csv_to_its_own_parser() -> None:
    args = parse_args(["csv", "data.csv", "--target", "y", "--name", "mine"])
    assert (args.path, args.target, args.name, args.task) == (Path("data.csv"), "y", "mine", "auto")


def test_a_user_running_it_sees_one_line_and_no_traceback(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", "a,b,y", ["1,2,x", "3,4"])
    done = run_training("csv", data, "--target", "y", "--name", "d", check=False)
    assert done.returncode == 2
    assert done.stderr == "mlp-train csv: error: d.csv line 3 has 2 fields where the header has 3\n"


def test_the_readme_lists_the_commands_options() -> None:
    readme = (ROOT / "README.md").read_text()
    (paragraph,) = [p for p in readme.split("\n\n") if "Besides the file, `--target`" in p]
    options = set(re.findall(r"--[a-z][a-z-]*", paragraph))
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as help_text:
        parse_args(["csv", "--help"])
    assert options == set(re.findall(r"--[a-z][a-z-]*", help_text.getvalue())) - {"--help"}
