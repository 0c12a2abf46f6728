"""What every codec checks the same way, on its own: 400 or 422 by the body's structure, the
float32 bounds and where a value breaks them, row counts, and library surprises as 400s."""

from __future__ import annotations

import numpy as np
import pytest

from modelrepo.card import ModelCard
from service.codecs import decoding
from service.codecs.decoding import FINITE_FLOAT32, TOO_DEEP, decode_json
from service.codecs.schemas import FLOAT32_MAX, V1PredictRequest
from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge, ServeError
from tests.conftest import MODELS_DIR

EXAMPLE = '{"instances": [[...], ...]}'
IRIS = ModelCard.model_validate_json((MODELS_DIR / "iris" / "1" / "card.json").read_text())


def decoded(body: bytes, float32_bounds: bool = True) -> V1PredictRequest:
    return decode_json(body, V1PredictRequest, EXAMPLE, float32_bounds)


def test_a_body_is_decoded_into_its_schema() -> None:
    assert decoded(b'{"instances": [[1, 2.5]], "extra": 1}').instances == [[1.0, 2.5]]


def test_a_leading_byte_order_mark_is_ignored() -> None:
    assert decoded(b'\xef\xbb\xbf{"instances": [[1]]}').instances == [[1.0]]


def test_an_empty_body_says_what_to_send() -> None:
    with pytest.raises(MalformedRequest) as caught:
        decoded(b"")
    assert str(caught.value) == f"the request body is empty; send JSON like {EXAMPLE}"


def test_broken_json_is_malformed_and_names_nan() -> None:
    with pytest.raises(MalformedRequest) as caught:
        decoded(b'{"instances": [[NaN]]}')
    text = str(caught.value)
    assert text.startswith("body is not valid JSON (")
    assert text.endswith("); NaN and Infinity are not JSON numbers")


def test_a_number_no_float_holds_is_malformed_not_invalid() -> None:
    with pytest.raises(MalformedRequest) as caught:
        decoded(b'{"instances": [[1e400]]}')
    assert str(caught.value).startswith("body is not valid JSON: ")


def test_json_of_the_wrong_shape_is_invalid_with_an_example() -> None:
    with pytest.raises(InvalidInput) as caught:
        decoded(b'{"instances": [["a"]]}')
    assert str(caught.value) == (
        f"Expected `float`, got `str` - at `$.instances[0][0]`; send JSON like {EXAMPLE}"
    )


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"instances": [[1, 2, 1e39]]}', "$.instances[0][2]"),
        (b'{"instances": [[1], [-3.5e38]]}', "$.instances[1][0]"),
    ],
)
def test_a_value_beyond_float32_is_named_by_where_it_is(body: bytes, where: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decoded(body)
    assert str(caught.value) == f"{FINITE_FLOAT32}; at `{where}`"


def test_without_float32_bounds_a_schema_error_is_the_schemas_own() -> None:
    """Off unless asked: OIP v2's header is decoded without them."""
    for decode in (
        lambda body: decoded(body, float32_bounds=False),
        lambda body: decode_json(body, V1PredictRequest, EXAMPLE),
    ):
        with pytest.raises(InvalidInput) as caught:
            decode(b'{"instances": [[1e39]]}')
        assert str(caught.value).endswith(f"; send JSON like {EXAMPLE}")
        assert FINITE_FLOAT32 not in str(caught.value)


def test_the_float32_bound_is_float32s_largest_value() -> None:
    assert np.float32(FLOAT32_MAX) == np.finfo(np.float32).max
    assert decoded(f'{{"instances": [[{FLOAT32_MAX!r}, {-FLOAT32_MAX!r}]]}}'.encode())
    assert FINITE_FLOAT32 == "values must be finite and fit in float32 (|x| <= 3.403e+38)"


def deeply_nested(depth: int) -> bytes:
    return b'{"instances": ' + b"[" * depth + b"]" * depth + b"}"


def test_json_nested_past_the_recursion_limit_is_malformed() -> None:
    for schema in (V1PredictRequest, object):
        with pytest.raises(MalformedRequest) as caught:
            decode_json(deeply_nested(100_000), schema, EXAMPLE)
        assert str(caught.value) == TOO_DEEP


@pytest.mark.parametrize(
    ("node", "where"),
    [
        (1e39, "$"),
        (-1e39, "$"),
        (FLOAT32_MAX, None),
        (10**39, "$"),
        (True, None),
        ({"a": [1, {"b": [0, 2e38, 4e38]}]}, "$.a[1].b[2]"),
        ([[1, 2], [3, "x", 1e40]], "$[1][2]"),
        ({"first": 1e39, "second": 1e39}, "$.first"),
        ("1e39", None),
        (None, None),
    ],
)
def test_beyond_float32_finds_the_first_number_too_large(node: object, where: str | None) -> None:
    assert decoding.beyond_float32(node, "$") == where


def test_a_decoders_own_errors_pass_as_they_are() -> None:
    error = PayloadTooLarge("too big")

    @decoding.client_errors
    def refuse() -> None:
        raise error

    with pytest.raises(PayloadTooLarge) as caught:
        refuse()
    assert caught.value is error


@pytest.mark.parametrize(
    ("raised", "text"),
    [
        (KeyError("x"), "the request cannot be read (KeyError)"),
        (ValueError("x"), "the request cannot be read (ValueError)"),
        (RecursionError(), TOO_DEEP),
    ],
)
def test_a_library_surprise_on_a_body_is_a_400(raised: Exception, text: str) -> None:
    @decoding.client_errors
    def surprised(body: bytes, *, strict: bool) -> None:
        raise raised

    with pytest.raises(MalformedRequest) as caught:
        surprised(b"", strict=True)
    assert str(caught.value) == text
    assert isinstance(caught.value, ServeError)


def test_a_wrapped_decoder_keeps_its_name_and_result() -> None:
    @decoding.client_errors
    def rows(body: bytes, *, scale: int) -> list[int]:
        """Doc."""
        return [len(body) * scale]

    assert rows(b"ab", scale=3) == [6]
    assert rows.__name__ == "rows"
    assert rows.__doc__ == "Doc."


@pytest.mark.parametrize(
    ("count", "error", "text"),
    [
        (0, InvalidInput, "no rows to infer; iris expects at least one"),
        (5, PayloadTooLarge, "5 rows in one request; the limit is 4, split the request"),
    ],
)
def test_row_counts_outside_one_to_the_limit(count: int, error: type, text: str) -> None:
    with pytest.raises(error) as caught:
        decoding.check_row_count(count, IRIS, max_rows=4)
    assert str(caught.value) == text


def test_row_counts_from_one_to_the_limit_pass() -> None:
    decoding.check_row_count(1, IRIS, max_rows=4)
    decoding.check_row_count(4, IRIS, max_rows=4)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_rows_must_be_finite(bad: float) -> None:
    rows = np.ones((2, 3), np.float32)
    assert decoding.check_finite(rows) is rows
    rows[1, 2] = bad
    with pytest.raises(InvalidInput) as caught:
        decoding.check_finite(rows)
    assert str(caught.value) == FINITE_FLOAT32
