"""A user's own CSV as a task: read, checked, split and described, ready for `train_task`.

The header row names the columns: one is the target, every other one a numeric feature, in the
order the model takes them. What the data lacks is a `BadData` whose message, one line, names
the file, the columns and the lines at fault. Nothing is guessed: a missing value or a text
column is refused (the service takes finite numbers only, so a model could not be sent either).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from training.data import Split, Splits, hold_out, stratified_split
from training.tasks import BarSpec, Hyperparameters, Kind, TaskSpec

TaskChoice = Literal["auto", "classification", "regression"]

# Cells that mean "no value" (case aside): refused, with their lines named.
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# `auto` takes integer targets with at most this many distinct values for classes.
MAX_AUTO_CLASSES = 20
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1  # of what the test split leaves
HIDDEN = (64, 64)
DEFAULTS = Hyperparameters(epochs=100, batch_size=32, lr=3e-3, weight_decay=1e-2)
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
SHOWN = 5  # lines, values or names quoted in one message


class BadData(Exception):
    """The CSV cannot be trained on as it is; the message says where and why."""


@dataclass(frozen=True)
class Table:
    """The CSV's rows: numeric features and the target's cells as written."""

    source: str  # the file's name, without its directory
    feature_names: tuple[str, ...]
    target: str
    x: torch.Tensor  # float32 (rows, features)
    labels: tuple[str, ...]
    lines: tuple[int, ...]  # the file line each row ends on


@dataclass(frozen=True)
class Target:
    """What the target column is to the model: its kind, why, and its values as tensors."""

    kind: Kind
    reason: str
    y: torch.Tensor  # class indices (rows,) or values (rows, 1)
    class_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Baseline:
    """The trivial model's test metric: always the train split's majority class, or its mean."""

    value: float
    description: str


def read_table(path: Path, target: str) -> Table:
    """Read and check `path`: a header, then one row per example, comma-separated UTF-8."""
    source = path.name
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            header, rows, lines = _read_rows(csv.reader(file, strict=True), source)
    except UnicodeDecodeError:
        raise BadData(f"{source} is not UTF-8 text") from None
    except OSError as error:
        raise BadData(f"{path}: {error.strerror or error}") from None
    if target not in header:
        raise BadData(
            f"{source} has no column {target!r} (columns: {_names(header)}){_separator(header)}"
        )
    if len(header) == 1:
        raise BadData(f"{source} has no feature columns beside the target {target!r}")
    columns = dict(zip(header, zip(*rows, strict=True), strict=True))
    _check_missing(source, columns, lines)
    features = tuple(name for name in header if name != target)
    x = _numeric_features(source, {name: columns[name] for name in features}, lines)
    return Table(source, features, target, x, tuple(columns[target]), tuple(lines))


def _read_rows(
    reader: Iterator[list[str]], source: str
) -> tuple[list[str], list[list[str]], list[int]]:
    try:
        header = [name.strip() for name in next((row for row in reader if row), [])]
        if not header:
            raise BadData(f"{source} is empty")
        _check_header(source, header)
        rows, lines = [], []
        for row in reader:
            if not row:  # a blank line
                continue
            line = reader.line_num  # type: ignore[attr-defined]
            if len(row) != len(header):
                raise BadData(
                    f"{source} line {line} has {len(row)} fields where the header has {len(header)}"
                )
            rows.append([cell.strip() for cell in row])
            lines.append(line)
    except csv.Error as error:
        raise BadData(f"{source} line {reader.line_num}: {error}") from None  # type: ignore[attr-defined]
    if not rows:
        raise BadData(f"{source} has a header but no rows")
    return header, rows, lines


def _separator(header: list[str]) -> str:
    """A hint where a one-column header is another separator's: the file is read with commas."""
    if len(header) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs")):
            if separator in header[0]:
                return f"; the file seems separated by {name}: save it comma-separated"
    return ""


def _check_header(source: str, header: list[str]) -> None:
    for position, name in enumerate(header, start=1):
        if not name:
            raise BadData(f"{source}: column {position} of the header has no name")
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise BadData(f"{source}: the header names {_names(repeated)} more than once")


def _check_missing(source: str, columns: dict[str, tuple[str, ...]], lines: list[int]) -> None:
    gaps = {
        name: [line for line, cell in zip(lines, cells, strict=True) if _is_missing(cell)]
        for name, cells in columns.items()
    }
    gaps = {name: at for name, at in gaps.items() if at}
    if gaps:
        where = "; ".join(f"{name!r} on {_lines(at)}" for name, at in gaps.items())
        raise BadData(f"{source} has missing values: {where}; fill them in or drop those rows")


def _numeric_features(
    source: str, columns: dict[str, tuple[str, ...]], lines: list[int]
) -> torch.Tensor:
    values, bad = [], []
    for name, cells in columns.items():
        numbers = [_number(cell) for cell in cells]
        if None in numbers:
            first = numbers.index(None)
            bad.append(f"{name!r} (line {lines[first]}: {cells[first]!r})")
        values.append(numbers)
    if bad:
        raise BadData(
            f"{source}: feature columns must hold finite numbers, and {', '.join(bad)} "
            "do not; encode categories as numbers (one 0/1 column per category) or drop them"
        )
    for name, numbers in zip(columns, values, strict=True):
        _check_sum_fits(source, name, numbers)  # type: ignore[arg-type]
    return torch.tensor(values, dtype=torch.float64).T.to(torch.float32).contiguous()


def decide_target(table: Table, task: TaskChoice) -> Target:
    """The target as classes or values: as asked, or for `auto` by what the column holds."""
    numbers = [_number(cell) for cell in table.labels]
    if task == "regression" or (task == "auto" and _looks_continuous(numbers)):
        return _regression_target(table, numbers, task)
    return _classification_target(table, numbers, task)


def _looks_continuous(numbers: list[float | None]) -> bool:
    if None in numbers:
        return False
    distinct = set(numbers)
    return len(distinct) > MAX_AUTO_CLASSES or not all(n.is_integer() for n in distinct)  # type: ignore[union-attr]


def _regression_target(table: Table, numbers: list[float | None], task: TaskChoice) -> Target:
    if None in numbers:
        first = numbers.index(None)
        raise BadData(
            f"{table.source}: a regression needs a numeric target, and {table.target!r} holds "
            f"{table.labels[first]!r} on line {table.lines[first]}"
        )
    if len(set(numbers)) == 1:
        raise BadData(
            f"{table.source}: the target {table.target!r} is {numbers[0]:g} on every row; "
            "there is nothing to learn"
        )
    _check_sum_fits(table.source, table.target, numbers)  # type: ignore[arg-type]
    span = max(numbers) - min(numbers)  # type: ignore[type-var, operator]
    widest = math.sqrt(FLOAT32_MAX / len(numbers)) / 2  # the MSE's float32 sum stays finite
    if span > widest:
        raise BadData(
            f"{table.source}: the target {table.target!r} spans {span:.3g}, too wide for its mean "
            f"squared error in float32 (at most {widest:.3g} over {len(numbers)} rows); rescale "
            "it (divide it by a power of ten)"
        )
    if task == "regression":
        reason = "as asked (--task regression)"
    elif all(n.is_integer() for n in numbers):  # type: ignore[union-attr]
        reason = (
            f"target {table.target!r} holds {len(set(numbers))} distinct integers, more than "
            f"the {MAX_AUTO_CLASSES} taken for classes (--task classification to insist)"
        )
    else:
        reason = f"target {table.target!r} holds numbers that are not all integers"
    y = torch.tensor(numbers, dtype=torch.float64).to(torch.float32).unsqueeze(1)
    return Target("regression", reason, y)


def _classification_target(table: Table, numbers: list[float | None], task: TaskChoice) -> Target:
    if None in numbers:  # text: the labels as written, sorted
        keys: list[object] = list(table.labels)
        names = {label: label for label in table.labels}
        what = "text"
    else:  # numbers: grouped by value, in numeric order
        keys = list(numbers)
        names = {n: str(int(n)) if n.is_integer() else repr(n) for n in numbers}  # type: ignore[union-attr]
        what = "integers"
    order = sorted(set(keys))  # type: ignore[type-var]
    class_names = tuple(names[key] for key in order)
    if len(class_names) == 1:
        raise BadData(
            f"{table.source}: the target {table.target!r} has the single class "
            f"{class_names[0]!r}; a classification needs at least two"
        )
    _check_class_sizes(table.source, Counter(names[key] for key in keys))
    index = {key: position for position, key in enumerate(order)}
    y = torch.tensor([index[key] for key in keys], dtype=torch.long)
    if task == "classification":
        reason = "as asked (--task classification)"
    else:
        reason = f"target {table.target!r} holds {what}"
    reason += f": {len(class_names)} classes ({_names(class_names)})"
    return Target("classification", reason, y, class_names)


def rows_needed() -> int:
    """The fewest rows (of each class, for a classification) that leave one in every split."""
    rows = 1
    while min(_split_sizes(rows)) < 1:
        rows += 1
    return rows


def _split_sizes(rows: int) -> tuple[int, int, int]:
    """(train, validation, test) rows, rounded as `hold_out` and `stratified_split` round."""
    test = round(rows * TEST_FRACTION)
    validation = round((rows - test) * VALIDATION_FRACTION)
    return rows - test - validation, validation, test


def _check_class_sizes(source: str, counts: Counter[str]) -> None:
    needed = rows_needed()
    small = [f"{name!r} has {count}" for name, count in counts.items() if count < needed]
    if small:
        raise BadData(
            f"{source}: too few rows to split: every class needs at least {needed} (one each "
            f"for train, validation and test), and {', '.join(small[:SHOWN])}"
        )


def split_rows(table: Table, target: Target, seed: int) -> Splits:
    """80/20 train/test, then 10% of train for validation: stratified by class, for classes."""
    if target.kind == "regression" and len(table.lines) < rows_needed():
        raise BadData(
            f"{table.source}: {len(table.lines)} rows are too few to split: a regression "
            f"needs at least {rows_needed()} (one each for train, validation and test)"
        )
    generator = torch.Generator().manual_seed(seed)
    divide = stratified_split if target.kind == "classification" else hold_out
    train, test = divide(Split(table.x, target.y), TEST_FRACTION, generator)
    fit, validation = divide(train, VALIDATION_FRACTION, generator)
    return Splits(fit, validation, test)


def baseline(target: Target, splits: Splits) -> Baseline:
    """The test metric of predicting, whatever the input, the train split's commonest class
    (accuracy) or its mean (mean squared error)."""
    train, test = splits.train.y, splits.test.y
    if target.kind == "classification":
        majority = int(torch.bincount(train).argmax())
        accuracy = (test == majority).float().mean().item()
        name = target.class_names[majority]  # type: ignore[index]
        return Baseline(accuracy, f"always the majority class {name!r}")
    mean = train.mean()
    return Baseline(torch.mean((test - mean) ** 2).item(), f"always the mean {mean.item():.4g}")


def tabular_task(table: Table, target: Target, name: str, seed: int) -> tuple[TaskSpec, Baseline]:
    """The task of predicting `table`'s target, and the baseline its bar is set at."""
    trivial = baseline(target, split_rows(table, target, seed))
    classes = target.class_names
    out = len(classes) if classes else 1
    kind = "Classifier" if classes else "Regressor"
    net = "-".join(map(str, (len(table.feature_names), *HIDDEN, out)))
    split = "stratified by class" if classes else "random"
    metric = "accuracy" if classes else "mse"
    task = TaskSpec(
        name=name,
        kind=target.kind,
        description=f"{kind} (MLP {net}) of {table.target!r}, trained on {table.source}.",
        dataset_description=(
            f"{table.source}: {len(table.lines)} rows, {len(table.feature_names)} feature "
            f"columns, target {table.target!r}; {split} 80/20 train/test split, 10% of train "
            f"held out for validation. Baseline ({trivial.description}): test {metric} "
            f"{trivial.value:.4g}."
        ),
        load=lambda source: split_rows(table, target, source.seed),
        in_features=len(table.feature_names),
        hidden=HIDDEN,
        out_features=out,
        dropout=0.0,
        defaults=DEFAULTS,
        bars=(BarSpec(f"test_{metric}", ">=" if classes else "<=", trivial.value),),
        class_names=classes,
        value_name=None if classes else table.target,
        feature_names=table.feature_names,
        input_description=(
            f"float32 (N, {len(table.feature_names)}): the feature columns of "
            f"{table.source}, in its order and units"
        ),
        restore_best=True,
        dataset_source=table.source,
        target=table.target,
    )
    return task, trivial


def _number(cell: str) -> float | None:
    """The cell as a finite float32-sized number, else None."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) and abs(value) <= FLOAT32_MAX else None


def _check_sum_fits(source: str, name: str, numbers: list[float]) -> None:
    """The column's mean and spread, computed in float32, stay finite: its sum must fit."""
    if math.fsum(map(abs, numbers)) > FLOAT32_MAX:
        largest = max(map(abs, numbers))
        raise BadData(
            f"{source}: column {name!r} holds values too large to average in float32 (up to "
            f"{largest:.3g}, its sum beyond {FLOAT32_MAX:.3g}); rescale it (divide it by a power "
            "of ten)"
        )


def _is_missing(cell: str) -> bool:
    return cell.lower() in MISSING


def _names(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _lines(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:SHOWN]))
    more = f" and {len(lines) - SHOWN} more" if len(lines) > SHOWN else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"
