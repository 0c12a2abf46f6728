"""The card's input spec as requests rely on it: feature names that tell features apart, and
the optional typical row (`input.example`): absent in older cards, else one finite float32
value per feature."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from modelrepo.card import ModelCard
from tests.conftest import MODELS_DIR

IRIS = json.loads((MODELS_DIR / "iris" / "2" / "card.json").read_text())


def with_example(example: object) -> dict:
    return {**IRIS, "input": {**IRIS["input"], "example": example}}


def test_cards_without_an_example_stay_valid() -> None:
    assert "example" not in IRIS["input"]
    assert ModelCard.model_validate(IRIS).input.example is None


def test_an_example_is_one_row_in_feature_order() -> None:
    card = ModelCard.model_validate(with_example([5.1, 3.5, 1.4, 0.2]))
    assert card.input.example == [5.1, 3.5, 1.4, 0.2]
    assert ModelCard.model_validate_json(card.model_dump_json()) == card


@pytest.mark.parametrize(
    ("example", "text"),
    [
        ([5.1, 3.5, 1.4], "example must give a value for every feature"),
        ([5.1, 3.5, 1.4, 0.2, 1.0], "example must give a value for every feature"),
        ([5.1, 3.5, 1.4, float("nan")], "finite and fit in float32"),
        ([5.1, 3.5, 1.4, 1e39], "finite and fit in float32"),
        ([5.1, 3.5, 1.4, -float("inf")], "finite and fit in float32"),
    ],
)
def test_an_example_of_the_wrong_width_or_values_is_refused(example: list, text: str) -> None:
    with pytest.raises(ValidationError, match=text):
        ModelCard.model_validate(with_example(example))


def test_the_input_still_forbids_unknown_fields() -> None:
    card = {**IRIS, "input": {**IRIS["input"], "examples": [[5.1, 3.5, 1.4, 0.2]]}}
    with pytest.raises(ValidationError, match="examples"):
        ModelCard.model_validate(card)


def test_feature_names_must_be_distinct() -> None:
    names = ["sepal_length_cm", "sepal_width_cm", "sepal_length_cm", "petal_width_cm"]
    card = {**IRIS, "input": {**IRIS["input"], "feature_names": names}}
    with pytest.raises(ValidationError, match="feature_names must be distinct"):
        ModelCard.model_validate(card)
