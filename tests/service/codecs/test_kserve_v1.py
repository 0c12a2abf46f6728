"""The KServe v1 codec on its own: media types, instances checked against the card, and the
answer of a classifier and of a regressor; no server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelrepo.card import ModelCard
from service.codecs import kserve_v1
from service.codecs.decoding import FINITE_FLOAT32
from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from tests.conftest import MODELS_DIR


def card(name: str) -> ModelCard:
    return ModelCard.model_validate_json((MODELS_DIR / name / "1" / "card.json").read_text())


IRIS, REGRESSION, MNIST = card("iris"), card("regression"), card("mnist")
# A feature model whose card names no features (a Triton repository adopted as it is, say).
UNNAMED = IRIS.model_copy(
    update={"name": "unnamed", "input": IRIS.input.model_copy(update={"feature_names": None})}
)
FLOWER = {
    "sepal_length_cm": 5.1,
    "sepal_width_cm": 3.5,
    "petal_length_cm": 1.4,
    "petal_width_cm": 0.2,
}
LIKE_NAMED = 'send JSON like {"instances": [{"feature name": number, ...}, ...]}'


def instances(*rows: object) -> bytes:
    return json.dumps({"instances": list(rows)}).encode()


def refused(body: bytes, model: ModelCard = IRIS) -> str:
    with pytest.raises(InvalidInput) as caught:
        kserve_v1.decode_rows(body, model, 8)
    return str(caught.value)


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


def test_named_instances_take_the_cards_order_whatever_order_they_come_in() -> None:
    shuffled = dict(reversed(FLOWER.items()))
    rows = kserve_v1.decode_rows(instances(shuffled, FLOWER), IRIS, 2)
    assert rows.dtype == np.float32
    assert rows.tolist() == [pytest.approx([5.1, 3.5, 1.4, 0.2])] * 2


def test_lists_and_named_instances_mix_each_instance_on_its_own() -> None:
    rows = kserve_v1.decode_rows(instances([1, 2, 3, 4], FLOWER, [5, 6, 7, 8]), IRIS, 3)
    assert rows.tolist() == [[1, 2, 3, 4], pytest.approx([5.1, 3.5, 1.4, 0.2]), [5, 6, 7, 8]]


def test_integers_and_float32s_extremes_are_values_as_in_lists() -> None:
    extremes = {**FLOWER, "sepal_length_cm": 7, "petal_width_cm": -3.4028234663852886e38}
    row = kserve_v1.decode_rows(instances(extremes), IRIS, 1)[0]
    assert row.tolist() == [7.0, pytest.approx(3.5), pytest.approx(1.4), float(np.finfo("f4").min)]


def test_a_leading_byte_order_mark_is_ignored_on_the_named_path_too() -> None:
    rows = kserve_v1.decode_rows(b"\xef\xbb\xbf" + instances(FLOWER), IRIS, 1)
    assert rows.tolist() == [pytest.approx([5.1, 3.5, 1.4, 0.2])]


@pytest.mark.parametrize(
    ("row", "text"),
    [
        (
            {**FLOWER, "alcohol": 13.2},
            "instance 1 has an unknown feature 'alcohol'; iris's features are 'sepal_length_cm', "
            "'sepal_width_cm', 'petal_length_cm', 'petal_width_cm'",
        ),
        (
            {"petal_width": 0.2, **{k: v for k, v in FLOWER.items() if k != "petal_width_cm"}},
            "instance 1 has an unknown feature 'petal_width' (did you mean 'petal_width_cm'?); "
            "iris's features are 'sepal_length_cm', ",
        ),
        (
            {k: v for k, v in FLOWER.items() if k != "sepal_width_cm"},
            "instance 1 lacks feature 'sepal_width_cm'",
        ),
        (
            {},
            "instance 1 lacks features 'sepal_length_cm', 'sepal_width_cm', 'petal_length_cm', "
            "'petal_width_cm'",
        ),
    ],
    ids=["unknown", "misspelt", "missing", "empty"],
)
def test_names_other_than_the_cards_are_422_naming_them(row: dict, text: str) -> None:
    assert refused(instances([1, 2, 3, 4], row)).startswith(text)


def test_missing_names_are_listed_in_full_up_to_eight() -> None:
    two = {k: v for k, v in FLOWER.items() if k.startswith("petal")}
    assert (
        refused(instances(two)) == "instance 0 lacks features 'sepal_length_cm', 'sepal_width_cm'"
    )
    all_but_eight = {f"x{i}": 0.0 for i in range(492)}
    assert refused(instances(all_but_eight), REGRESSION) == (
        "instance 0 lacks features 'x492', 'x493', 'x494', 'x495', 'x496', 'x497', 'x498', 'x499'"
    )


def test_a_list_of_the_wrong_width_beside_objects_is_422_naming_it() -> None:
    assert refused(instances(FLOWER, [1, 2, 3])) == (
        "iris expects 4 features per instance; instance 1 has 3"
    )


def test_named_instances_above_the_row_limit_are_413_as_lists_are() -> None:
    messages = []
    for row in (FLOWER, [5.1, 3.5, 1.4, 0.2]):
        with pytest.raises(PayloadTooLarge) as caught:
            kserve_v1.decode_rows(instances(*[row] * 9), IRIS, 8)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def test_the_largest_float32_is_a_value_and_the_next_bad_one_is_named() -> None:
    row = {**FLOWER, "petal_length_cm": 3.4028234663852886e38, "petal_width_cm": "x"}
    assert refused(instances(row)).startswith(
        "Expected `float`, got `str` - at `$.instances[0].petal_width_cm`"
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [{"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "sepal_length_cm": 6,'
        b' "petal_length_cm": 1.4, "petal_width_cm": 0.2}]}',
        # A repeat beside a missing name: the decoded dict alone would only say it is missing.
        b'{"instances": [{"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "sepal_length_cm": 6,'
        b' "petal_length_cm": 1.4}]}',
    ],
    ids=["all there", "one missing"],
)
def test_a_feature_given_twice_is_422_naming_it(body: bytes) -> None:
    assert refused(body) == "instance 0 gives feature 'sepal_length_cm' more than once"


def test_the_name_given_twice_is_the_one_named_wherever_it_stands() -> None:
    body = (
        b'{"instances": [{"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "petal_length_cm": 1.4,'
        b' "petal_width_cm": 0.2, "petal_length_cm": 1.5}]}'
    )
    assert refused(body) == "instance 0 gives feature 'petal_length_cm' more than once"


def test_a_repeated_key_elsewhere_in_the_body_is_no_feature() -> None:
    body = b'{"meta": {"a": 1, "a": 2}, "instances": [[1, 2, 3, 4], ' + json.dumps(FLOWER).encode()
    assert kserve_v1.decode_rows(body + b"]}", IRIS, 2).shape == (2, 4)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5.1", f"Expected `float`, got `str` - at `$.instances[0].petal_width_cm`; {LIKE_NAMED}"),
        (True, f"Expected `float`, got `bool` - at `$.instances[0].petal_width_cm`; {LIKE_NAMED}"),
        (None, f"Expected `float`, got `null` - at `$.instances[0].petal_width_cm`; {LIKE_NAMED}"),
        ([1], f"Expected `float`, got `array` - at `$.instances[0].petal_width_cm`; {LIKE_NAMED}"),
        ({"cm": 1}, "Expected `float`, got `object` - at `$.instances[0].petal_width_cm`; "),
        (1e39, f"{FINITE_FLOAT32}; at `$.instances[0].petal_width_cm`"),
        (-(10**39), f"{FINITE_FLOAT32}; at `$.instances[0].petal_width_cm`"),
    ],
)
def test_a_named_value_passes_the_checks_a_list_value_does(value: object, text: str) -> None:
    assert refused(instances({**FLOWER, "petal_width_cm": value})).startswith(text)


def test_a_named_number_no_float_holds_is_malformed_as_in_a_list() -> None:
    body = instances(FLOWER).replace(b"0.2", b"1e400")
    with pytest.raises(MalformedRequest):
        kserve_v1.decode_rows(body, IRIS, 1)


@pytest.mark.parametrize("where", ["unknown", "repeated"])
def test_a_huge_feature_name_is_cut_short_in_the_message(where: str) -> None:
    huge = "sepal_length_cm" + "x" * 1_000_000
    if where == "unknown":
        body = instances({**FLOWER, huge: 1.0})
    else:
        fields = ", ".join(f'"{name}": {value}' for name, value in FLOWER.items())
        body = f'{{"instances": [{{{fields}, "{huge}": 1, "{huge}": 2}}]}}'.encode()
    message = refused(body)
    assert len(message) < 400
    assert f"{huge[:64]!r}... (1000015 characters)" in message


def test_a_feature_name_of_the_limit_is_shown_whole_and_one_longer_cut_short() -> None:
    at_limit, over = "a" * 64, "b" * 65
    assert f"unknown feature {at_limit!r};" in refused(instances({**FLOWER, at_limit: 1.0}))
    assert f"unknown feature {over[:64]!r}... (65 characters);" in refused(
        instances({**FLOWER, over: 1.0})
    )


@pytest.mark.parametrize(
    ("model", "text"),
    [
        (UNNAMED, "model unnamed has no feature names; send lists of 4 values"),
        (
            MNIST,
            "model mnist has no feature names; send each instance as a list of its 784 pixel "
            "values, or the pictures to :predict-image",
        ),
    ],
)
def test_a_model_without_feature_names_refuses_named_instances(model: ModelCard, text: str) -> None:
    assert refused(instances({"x": 1}), model) == text


def test_a_long_list_of_missing_names_is_cut_short() -> None:
    assert refused(instances({"x0": 1}), REGRESSION) == (
        "instance 0 lacks features 'x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7', 'x8' and 491 more"
    )


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


def test_a_model_of_several_values_answers_them_all_per_row() -> None:
    """A card-less Triton model without labels may declare several outputs: each row's values."""
    wide = REGRESSION.model_copy(
        update={"output": REGRESSION.output.model_copy(update={"shape": [-1, 2]})}
    )
    answer = kserve_v1.encode_answer(wide, np.array([[1.5, 0.5], [-2.0, 4.0]], np.float32))
    assert json.loads(answer.body)["predictions"] == [{"value": [1.5, 0.5]}, {"value": [-2.0, 4.0]}]
