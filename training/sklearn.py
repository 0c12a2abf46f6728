"""scikit-learn estimators over this project's MLPs: `MLPClassifier` and `MLPRegressor`.

They fit the net the CLI trains (the input standardisation, and a regression's target scale,
inside the module) with its loop, through scikit-learn's own validation, so they work in
`Pipeline`, `GridSearchCV` and `cross_val_score`; `publish(repo, name)` writes the fitted net
as the next version of a model (TorchScript, ONNX, curves and card) that the service serves.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
    check_random_state,
    column_or_1d,
    validate_data,
)

from modelrepo.devices import resolve_device
from training import export
from training.data import Split, Splits
from training.fit import Stopwatch, cpu_threads, evaluate, fit
from training.nets import ServingModel
from training.pipeline import Trained, build_model, publish_version
from training.tabular import DEFAULTS, HIDDEN
from training.tasks import Hyperparameters, Kind, TaskSpec

# A small net's matrices are too small to share out (training/csv_command.py); parallel fits,
# GridSearchCV(n_jobs=...), use the cores better.
FIT_THREADS = 1
VERIFY_ROWS = 64  # rows, drawn around the training data's mean, the exports are checked on


class _MLPEstimator(BaseEstimator):
    """What both estimators share: the parameters, the fit, the forward pass and `publish`."""

    _kind: Kind

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = HIDDEN,
        *,
        epochs: int = DEFAULTS.epochs,
        batch_size: int = DEFAULTS.batch_size,
        lr: float = DEFAULTS.lr,
        weight_decay: float = DEFAULTS.weight_decay,
        dropout: float = 0.0,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.device = device
        self.random_state = random_state

    def _task(self, outputs: int, class_names: tuple[str, ...] | None, name: str) -> TaskSpec:
        features = self.n_features_in_
        names = getattr(self, "feature_names_in_", None)
        net = "-".join(map(str, (features, *self.hidden_layer_sizes, outputs)))
        return TaskSpec(
            name=name,
            kind=self._kind,
            description=f"{type(self).__name__} (MLP {net}), fitted with training.sklearn.",
            dataset_description=f"{self.n_samples_fit_} rows passed to fit.",
            load=_no_loader,
            in_features=features,
            hidden=tuple(self.hidden_layer_sizes),
            out_features=outputs,
            dropout=self.dropout,
            defaults=self._hyperparameters(),
            bars=(),
            class_names=class_names,
            value_name=None if class_names else "y",
            feature_names=None if names is None else tuple(map(str, names)),
            input_description=f"float32 (N, {features}): the columns passed to fit, in order",
        )

    def _hyperparameters(self) -> Hyperparameters:
        return Hyperparameters(self.epochs, self.batch_size, self.lr, self.weight_decay)

    def _fit(self, x: np.ndarray, y: torch.Tensor, class_names: tuple[str, ...] | None) -> None:
        clock = Stopwatch()
        self.n_samples_fit_ = len(x)
        task = self._task(len(class_names) if class_names else 1, class_names, "estimator")
        self.device_ = torch.device(resolve_device(self.device))
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        train = Split(torch.tensor(x), y).to(self.device_)
        nothing = Split(train.x[:0], train.y[:0])  # no held-out rows: cross-validate instead
        devices = [self.device_] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), cpu_threads(FIT_THREADS):
            torch.manual_seed(self.seed_)
            self.model_ = build_model(task, train).to(self.device_)
            _check_statistics(self.model_)
            self.history_ = fit(
                self.model_, task, Splits(train, nothing, nothing), task.defaults, self.seed_, False
            )
            loss, metric = evaluate(self.model_, task, train)
        self.train_metrics_ = {"train_loss": loss, f"train_{task.metric}": metric}
        self.fit_time_s_ = clock.elapsed()

    def _forward(self, X: Any) -> np.ndarray:
        """The net's outputs for `X`, computed in float64 from its float32 weights: float32
        matmuls round differently by batch size, and a row's prediction must not depend on
        the rows beside it (the served float32 model agrees within 1e-5, as the tests check)."""
        check_is_fitted(self)
        x = validate_data(self, X, reset=False, dtype=np.float64)
        model = copy.deepcopy(self.model_).double().eval()
        with torch.inference_mode(), cpu_threads(FIT_THREADS):
            return model(torch.tensor(x).to(self.device_)).cpu().numpy()

    def publish(
        self, repo: str | Path, name: str, *, X_test: Any = None, y_test: Any = None
    ) -> Path:
        """Write the fitted net as the next version of `name` in `repo` (and its config.pbtxt)
        and return that version's directory; `X_test`, `y_test` add test metrics to its card."""
        check_is_fitted(self)
        if (X_test is None) != (y_test is None):
            raise ValueError("publish takes X_test and y_test together, or neither")
        task = self._task(*self._outputs(), export.check_model_name(name))
        metrics = dict(self.train_metrics_)
        sizes = {"train": self.n_samples_fit_}
        if X_test is not None:
            test = Split(
                torch.tensor(validate_data(self, X_test, reset=False, dtype=np.float32)),
                self._targets(y_test),
            ).to(self.device_)
            metrics["test_loss"], metrics[f"test_{task.metric}"] = evaluate(self.model_, task, test)
            sizes["test"] = len(test)
            task = replace(task, dataset_description=_described(task, len(test)))
        trained = Trained(
            model=copy.deepcopy(self.model_).cpu(),
            history=self.history_,
            metrics=metrics,
            sizes=sizes,
            params=self._hyperparameters(),
            seed=self.seed_,
            device=self.device_,
            bf16=False,
            wall_time_s=lambda: self.fit_time_s_,
        )
        path, _ = publish_version(task, trained, Path(repo), self._verification_rows())
        return path

    def _verification_rows(self) -> torch.Tensor:
        """Rows around the training data (mean +- its standard deviation) to check exports on:
        the estimator keeps no training data."""
        normalize = self.model_.normalize
        noise = torch.randn(
            VERIFY_ROWS, self.n_features_in_, generator=torch.Generator().manual_seed(self.seed_)
        )
        return (noise / normalize.inv_std.cpu() + normalize.mean.cpu()).float()

    def _outputs(self) -> tuple[int, tuple[str, ...] | None]:
        raise NotImplementedError

    def _targets(self, y: Any) -> torch.Tensor:
        raise NotImplementedError


class MLPClassifier(ClassifierMixin, _MLPEstimator):
    """An MLP classifier: softmax probabilities over `classes_`, cross-entropy, AdamW."""

    _kind = "classification"

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        x, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        self._fit(x, self._targets(y), self._outputs()[1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._forward(X)

    def predict(self, X: Any) -> np.ndarray:
        probabilities = self._forward(X)
        return self.classes_[probabilities.argmax(axis=1)]

    def _outputs(self) -> tuple[int, tuple[str, ...]]:
        return len(self.classes_), tuple(str(label) for label in self.classes_)

    def _targets(self, y: Any) -> torch.Tensor:
        encoder = LabelEncoder()
        encoder.classes_ = self.classes_  # transform refuses a label that fit never saw
        return torch.from_numpy(encoder.transform(column_or_1d(y))).long()


class MLPRegressor(RegressorMixin, _MLPEstimator):
    """An MLP regressor of one target: its scale inside the module, mean squared error, AdamW."""

    _kind = "regression"

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        x, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True, ensure_min_samples=2)
        self._fit(x, self._targets(y), None)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self._forward(X)[:, 0]

    def _outputs(self) -> tuple[int, None]:
        return 1, None

    def _targets(self, y: Any) -> torch.Tensor:
        return torch.from_numpy(column_or_1d(y).astype(np.float32).reshape(-1, 1))


def _check_statistics(model: ServingModel) -> None:
    """The normalisation fitted on X (and a regressor's scale of y) is finite: values near
    float32's limit overflow its sums, and the net would answer NaN for every row."""
    normalize = model.normalize
    statistics = [normalize.mean, normalize.inv_std, *model.head.buffers()]
    if not all(torch.isfinite(s).all() for s in statistics) or (normalize.inv_std == 0).any():
        raise ValueError(
            "X or y holds values too large for float32 statistics (a column's mean or standard "
            "deviation overflows); rescale them, e.g. with sklearn.preprocessing.StandardScaler"
        )


def _no_loader(source: object) -> Splits:
    raise TypeError("an estimator's data is what fit is given")


def _described(task: TaskSpec, test_rows: int) -> str:
    return f"{task.dataset_description} {test_rows} test rows passed to publish."
