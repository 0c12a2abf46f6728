"""training.sklearn: scikit-learn's own checks, its model selection, and publish -> served."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris, load_wine
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from modelrepo.card import ModelCard
from tests.conftest import ROOT
from tests.service.conftest import Server, start_server, wait_until
from training.__main__ import main as train_main
from training.sklearn import MLPClassifier, MLPRegressor

FAST = {"epochs": 10, "batch_size": 64, "random_state": 0}  # enough for the checks, quickly
# Every check passes (check_array_api_input skips itself: these are torch nets, not array-API).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [MLPClassifier(**FAST), MLPRegressor(**FAST)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learns_own_checks(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def test_a_pipeline_cross_validates_and_grid_searches() -> None:
    X, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(epochs=30, random_state=0))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.mean() > 0.9, scores
    search = GridSearchCV(pipeline, {"mlpclassifier__hidden_layer_sizes": [(8,), (32, 32)]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["mlpclassifier__hidden_layer_sizes"] in [(8,), (32, 32)]
    assert search.score(X, y) > 0.9


def test_a_dataframe_names_the_features() -> None:
    wine = load_wine(as_frame=True)
    model = MLPClassifier(epochs=20, random_state=0).fit(wine.data, wine.target_names[wine.target])
    assert list(model.feature_names_in_) == list(wine.data.columns)
    assert list(model.classes_) == ["class_0", "class_1", "class_2"]
    assert model.predict(wine.data.iloc[:1])[0] == "class_0"
    with pytest.raises(ValueError, match="feature names"):
        model.predict(wine.data[wine.data.columns[::-1]])


def test_random_state_makes_a_fit_repeat_and_leaves_torchs_own_seed_alone() -> None:
    X, y = load_iris(return_X_y=True)
    before = torch.random.get_rng_state()
    first = MLPClassifier(epochs=5, random_state=3).fit(X, y).predict_proba(X)
    second = MLPClassifier(epochs=5, random_state=3).fit(X, y).predict_proba(X)
    other = MLPClassifier(epochs=5, random_state=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_values_beyond_float32_statistics_are_refused_not_fitted_to_nan(estimator) -> None:  # type: ignore[no-untyped-def]
    X = np.array([[3e38, 1.0], [3e38, 2.0]] * 5, dtype=np.float32)  # the column's sum overflows
    y = np.array([0, 1] * 5)
    with pytest.raises(ValueError, match=r"^X or y holds values too large for float32 statistics"):
        estimator(epochs=1, device="cpu", random_state=0).fit(X, y)
    if estimator is MLPRegressor:  # y: its scale overflows
        with pytest.raises(ValueError, match=r"too large for float32 statistics"):
            estimator(epochs=1, device="cpu").fit(np.eye(10, 2), np.array([3e38, 2.9e38] * 5))


def test_publish_refuses_a_bad_name_and_half_a_test_set(tmp_path: Path) -> None:
    model = MLPRegressor(epochs=1, random_state=0).fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="'My Model' is not a model name"):
        model.publish(tmp_path, "My Model")
    with pytest.raises(ValueError, match="X_test and y_test together"):
        model.publish(tmp_path, "mine", X_test=[[0.0]])
    assert list(tmp_path.iterdir()) == []


# --- published and served ----------------------------------------------------------------------


def readme_wine_command() -> list[str]:
    """The README's CSV example, as written."""
    (line,) = re.findall(r"^python -m training csv .*$", (ROOT / "README.md").read_text(), re.M)
    return line.split()[3:]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A server polling a repository that holds the README's wine model."""
    repo = tmp_path_factory.mktemp("published") / "models"
    assert train_main([*readme_wine_command(), "--repo", str(repo), "--quiet"]) == 0
    log = tmp_path_factory.mktemp("published-log") / "server.log"
    server = start_server(repo, log, poll_interval_s="0.1")
    yield server, repo
    assert server.stop() == 0


def predict_over_http(server: Server, name: str, rows: np.ndarray) -> dict:  # type: ignore[type-arg]
    """The service's answer for `rows`, once the model's first version is ready (next poll)."""
    request = {"instances": rows.tolist()}
    with server.client() as http:
        ready = f"/v2/models/{name}/versions/1/ready"
        wait_until(lambda: http.get(ready).status_code == 200, f"{name} ready")
        answer = http.post(f"/v1/models/{name}:predict", json=request)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_published_classifier_is_served_on_the_next_poll_as_predict_proba(
    served: tuple[Server, Path],
) -> None:
    server, repo = served
    iris = load_iris(as_frame=True)
    model = MLPClassifier(epochs=30, random_state=0).fit(iris.data, iris.target)
    test = iris.data.iloc[::5], iris.target.iloc[::5]
    assert model.publish(repo, "flowers", X_test=test[0], y_test=test[1]) == repo / "flowers" / "1"
    rows = iris.data.iloc[::10]
    predictions = predict_over_http(server, "flowers", rows.values)["predictions"]
    probabilities = np.array([p["probabilities"] for p in predictions])
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), atol=1e-5)
    assert [p["class_name"] for p in predictions] == [str(c) for c in model.predict(rows)]
    card = ModelCard.model_validate_json((repo / "flowers" / "1" / "card.json").read_text())
    assert card.input.feature_names == list(iris.data.columns)
    np.testing.assert_allclose(card.input.example, iris.data.mean(), rtol=1e-5)  # the form's row
    assert card.output.class_names == ["0", "1", "2"]
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy"} <= set(card.metrics)
    assert card.dataset.sizes == {"train": 150, "test": 30}
    assert card.files.keys() == {"model.pt", "model.onnx", "curves.png"}


def test_a_published_regressor_is_served_as_predict(served: tuple[Server, Path]) -> None:
    server, repo = served
    wine = load_wine()
    x, y = wine.data[:, 1:], wine.data[:, 0]  # alcohol from the other twelve
    model = MLPRegressor(epochs=30, random_state=0).fit(x, y)
    assert model.publish(repo, "alcohol") == repo / "alcohol" / "1"
    rows = x[::20]
    values = [p["value"] for p in predict_over_http(server, "alcohol", rows)["predictions"]]
    np.testing.assert_allclose(values, model.predict(rows), rtol=1e-5)
    card = ModelCard.model_validate_json((repo / "alcohol" / "1" / "card.json").read_text())
    assert (card.task, card.output.value_name) == ("regression", "y")
    assert card.input.feature_names is None  # a numpy array names no columns


def test_the_readme_wine_request_answers_as_shown(served: tuple[Server, Path]) -> None:
    server, _ = served
    readme = (ROOT / "README.md").read_text()
    (command, shown) = re.findall(
        r"^(curl -s localhost:8000/v1/models/wine:predict .*?\n.*?)\n# (\{.*)$", readme, re.M
    )[0]
    address = server.base_url.removeprefix("http://")
    done = subprocess.run(
        ["bash", "-c", command.replace("localhost:8000", address)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith(shown.removesuffix("..."))


def test_the_readme_example_runs_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### scikit-learn estimators") :]
    example = re.search(r"^```\n(.*?)^```", section, re.M | re.S).group(1)  # type: ignore[union-attr]
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    shown = re.findall(r"  # (.*)$", example, re.M)
    for line, comment in zip(printed, shown, strict=True):
        assert line.startswith(comment.removesuffix("...")), (line, comment)
    card = ModelCard.model_validate_json((tmp_path / "models/wine_mlp/1/card.json").read_text())
    assert card.input.feature_names == list(load_wine(as_frame=True).data.columns)
    assert card.output.class_names == ["class_0", "class_1", "class_2"]
