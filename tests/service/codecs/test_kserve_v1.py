"""The KServe v1 codec on its own: media types, instances checked against the card, and the
answer of a classifier and of a regressor; no server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelrepo.card import ModelCard
from service.codecs import kserve_v1
from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from tests.conftest import MODELS_DIR


def card(name: str) -> ModelCard:
    return ModelCard.model_validate_json((MODELS_DIR / name / "1" / "card.json").read_text())


IRIS, REGRESSION = card("iris"), card("regression")


@pytest.mark.parametrize(
    ("media", "hint"),
    [
        ("image/png", " (images go to :predict-image)"),
        ("multipart/form-data", " (images go to :predict-image)"),
        ("text/plain", ""),
        ("application/x-www-form-urlencoded", ""),
    ],
)
def test_other_media_types_are_415_images_pointed_to_predict_image(media: str, hint: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        kserve_v1.check_media_type(media)
    assert str(caught.value) == (
        f"content type {media!r} is not supported here; send application/json{hint}"
    )


def test_instances_become_one_float32_block() -> None:
    rows = kserve_v1.decode_rows(b'{"instances": [[1, 2, 3, 4], [5.5, 6, 7, 8]]}', IRIS, 2)
    assert rows.dtype == np.float32
    assert rows.tolist() == [[1, 2, 3, 4], [5.5, 6, 7, 8]]


def test_each_instance_needs_the_cards_feature_count() -> None:
    with pytest.raises(InvalidInput) as caught:
        kserve_v1.decode_rows(b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 4, 5]]}', IRIS, 8)
    assert str(caught.value) == "iris expects 4 features per instance; instance 1 has 5"


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        (b'{"instances": []}', InvalidInput, "no rows to infer; iris expects at least one"),
        (
            b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]]}',
            PayloadTooLarge,
            "3 rows in one request; the limit is 2, split the request",
        ),
        (b"", MalformedRequest, 'the request body is empty; send JSON like {"instances": '),
        (
            b'{"instances": [[1, 2, 3, "4"]]}',
            InvalidInput,
            'Expected `float`, got `str` - at `$.instances[0][3]`; send JSON like {"instances": ',
        ),
    ],
)
def test_bad_bodies(body: bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error) as caught:
        kserve_v1.decode_rows(body, IRIS, max_rows=2)
    assert str(caught.value).startswith(text)
    assert kserve_v1.EXAMPLE == '{"instances": [[...], ...]}'


def test_class_predictions_label_name_and_probabilities() -> None:
    outputs = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], np.float32)
    predictions = kserve_v1.class_predictions(IRIS, outputs)
    assert [(p.label, p.class_name) for p in predictions] == [(2, "virginica"), (0, "setosa")]
    assert predictions[0].probabilities == pytest.approx([0.1, 0.2, 0.7])


def test_the_classifier_answer() -> None:
    answer = kserve_v1.encode_answer(IRIS, np.array([[0.25, 0.5, 0.25], [1.0, 0.0, 0.0]]))
    assert answer.media_type == b"application/json"
    assert json.loads(answer.body) == {
        "model_name": "iris",
        "model_version": "1",
        "predictions": [
            {"label": 1, "class_name": "versicolor", "probabilities": [0.25, 0.5, 0.25]},
            {"label": 0, "class_name": "setosa", "probabilities": [1.0, 0.0, 0.0]},
        ],
    }


def test_the_regressor_answer_is_one_value_per_row() -> None:
    answer = kserve_v1.encode_answer(REGRESSION, np.array([[1.5], [-2.0]], np.float32))
    assert json.loads(answer.body) == {
        "model_name": "regression",
        "model_version": "1",
        "predictions": [{"value": 1.5}, {"value": -2.0}],
    }
