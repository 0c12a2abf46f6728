"""KServe v1 / TF-Serving JSON: `{"instances": [[...], ...]}` in, `{"predictions": [...]}` out."""

from __future__ import annotations

import difflib
import json
from typing import Any

import msgspec
import numpy as np

from modelrepo.card import ModelSpec
from service.codecs.answer import Answer, json_answer
from service.codecs.decoding import FINITE_FLOAT32, check_row_count, client_errors, decode_json
from service.codecs.schemas import (
    FLOAT32_MAX,
    ClassPrediction,
    Float32,
    RawInstances,
    V1ClassResponse,
    V1ListRequest,
    V1PredictRequest,
    V1ValueResponse,
    ValuePrediction,
)
from service.errors import InvalidInput, UnsupportedMediaType

EXAMPLE = '{"instances": [[...], ...]}'
LIKE_NAMED = 'send JSON like {"instances": [{"feature name": number, ...}, ...]}'
# Counts an object's members; numbers are read as `bool`, cheaper than float, as only the count
# is kept (the typed decode has checked them).
MEMBER_COUNTER = json.JSONDecoder(object_pairs_hook=len, parse_float=bool, parse_int=bool)
LISTS = msgspec.json.Decoder(V1ListRequest)
JSON_TYPES = {str: "str", bool: "bool", type(None): "null", list: "array", dict: "object"}


def check_media_type(media: str) -> None:
    """JSON or no Content-Type at all; images are pointed to `:predict-image`."""
    if media and media != "application/json":
        hint = (
            " (images go to :predict-image)" if media.startswith(("image/", "multipart/")) else ""
        )
        raise UnsupportedMediaType(
            f"content type {media!r} is not supported here; send application/json{hint}"
        )


@client_errors
def decode_rows(body: bytes, card: ModelSpec, max_rows: int) -> np.ndarray:
    """The instances as a float32 (N, features) block, every one checked against the card.

    An instance is a list in the card's feature order, or an object keyed by its feature names
    in any order. Lists alone are the hot path: one typed decode checks their values.
    """
    try:
        instances = LISTS.decode(body).instances
    except (msgspec.ValidationError, msgspec.DecodeError):
        return decode_mixed_rows(body, card, max_rows)  # objects, or a body to tell what is wrong
    check_row_count(len(instances), card, max_rows)
    features = card.input.features
    for index, instance in enumerate(instances):
        if len(instance) != features:
            raise InvalidInput(wrong_width(card, index, instance))
    # Float32 bounds were checked while decoding: the cast cannot overflow.
    return np.array(instances, dtype=np.float32)


def decode_mixed_rows(body: bytes, card: ModelSpec, max_rows: int) -> np.ndarray:
    """Instances of which some are objects, each ordered by the card's feature names."""
    instances = decode_json(body, V1PredictRequest, EXAMPLE, float32_bounds=True).instances
    check_row_count(len(instances), card, max_rows)
    features = card.input.features
    named = []
    for index, instance in enumerate(instances):
        if isinstance(instance, dict):
            named.append((index, instance))
        elif len(instance) != features:
            raise InvalidInput(wrong_width(card, index, instance))
    rows = ordered_rows(body, named, card)
    for (index, _), row in zip(named, rows, strict=True):
        instances[index] = row
    return np.array(instances, dtype=np.float32)


def wrong_width(card: ModelSpec, index: int, instance: list[float]) -> str:
    return (
        f"{card.name} expects {card.input.features} features per instance; "
        f"instance {index} has {len(instance)}"
    )


def ordered_rows(
    body: bytes, named: list[tuple[int, dict[str, Any]]], card: ModelSpec
) -> list[list[float]]:
    """The object instances (index, decoded dict) as rows in the card's feature order, once
    their names and values are checked."""
    names = card.input.feature_names
    if names is None:
        raise InvalidInput(without_feature_names(card))
    known = frozenset(names)
    counts = member_counts(body)
    for index, instance in named:
        # A decoded dict keeps one entry of a name given twice: only the JSON text tells.
        if len(instance) != counts[index]:
            raise InvalidInput(repeated_name(body, index))
        if instance.keys() != known:
            raise InvalidInput(wrong_names(card.name, names, list(instance), index))
    rows = [[instance[name] for name in names] for _, instance in named]
    try:
        return msgspec.convert(rows, list[list[Float32]])
    except msgspec.ValidationError:
        raise InvalidInput(value_error(names, named, rows)) from None


def member_counts(body: bytes) -> list[Any]:
    """Each object instance's member count, names repeated or not (a list instance stays a list:
    only objects are asked)."""
    raw = decode_json(body, RawInstances, EXAMPLE).instances
    counts: list[Any] = MEMBER_COUNTER.decode(bytes(raw).decode())
    return counts


def repeated_name(body: bytes, index: int) -> str:
    raw = decode_json(body, RawInstances, EXAMPLE).instances
    pairs = json.loads(bytes(raw), object_pairs_hook=list)[index]
    names = [name for name, _ in pairs]
    repeated = next(name for position, name in enumerate(names) if name in names[:position])
    return f"instance {index} gives feature {quoted(repeated)} more than once"


def without_feature_names(card: ModelSpec) -> str:
    features = card.input.features
    if card.input.image is not None:
        return (
            f"model {card.name} has no feature names; send each instance as a list of its "
            f"{features} pixel values, or the pictures to :predict-image"
        )
    return f"model {card.name} has no feature names; send lists of {features} values"


def wrong_names(model: str, names: list[str], given: list[str], index: int) -> str:
    """Why an object's names are not the card's: the first it gives that the card lacks (with
    the card's nearest), else the card's names it lacks."""
    known = set(names)
    # No name of the card is close to one over 2.33 times as long (difflib's 0.6 cutoff).
    longest = max(map(len, names))
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, names, n=1) if len(name) <= 3 * longest else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return (
                f"instance {index} has an unknown feature {quoted(name)}{hint}; "
                f"{model}'s features are {few(names)}"
            )
    present = set(given)
    missing = [name for name in names if name not in present]
    return f"instance {index} lacks feature{'s' if len(missing) > 1 else ''} {few(missing)}"


def quoted(name: str, shown: int = 64) -> str:
    """A client's name for a message: quoted, a long one cut short (the error and the access
    log never echo megabytes of a hostile body)."""
    if len(name) <= shown:
        return repr(name)
    return f"{name[:shown]!r}... ({len(name)} characters)"


def few(names: list[str], shown: int = 8) -> str:
    """Names for a message: all of a short list, the first few of a long one."""
    quoted = ", ".join(repr(name) for name in names[:shown])
    return quoted if len(names) <= shown else f"{quoted} and {len(names) - shown} more"


def value_error(
    names: list[str], named: list[tuple[int, dict[str, Any]]], rows: list[list[Any]]
) -> str:
    """What the list path says of the first value that is no float32 number, at its name."""
    index, name, value = next(
        (index, name, value)
        for (index, _), row in zip(named, rows, strict=True)
        for name, value in zip(names, row, strict=True)
        if type(value) not in (int, float) or abs(value) > FLOAT32_MAX  # bool is neither
    )
    where = f"$.instances[{index}].{name}"
    if type(value) in (int, float):
        return f"{FINITE_FLOAT32}; at `{where}`"
    return f"Expected `float`, got `{JSON_TYPES[type(value)]}` - at `{where}`; {LIKE_NAMED}"


def class_predictions(card: ModelSpec, outputs: np.ndarray) -> list[ClassPrediction]:
    """A classifier's outputs: label, class name (where the card names them), probabilities."""
    names = card.output.class_names
    labels = outputs.argmax(axis=1).tolist()
    return [
        ClassPrediction(
            label=label, class_name=names[label] if names else None, probabilities=probabilities
        )
        for label, probabilities in zip(labels, outputs.tolist(), strict=True)
    ]


def encode_answer(card: ModelSpec, outputs: np.ndarray) -> Answer:
    if card.task == "regression":
        rows = outputs[:, 0] if card.output.width == 1 else outputs
        values = [ValuePrediction(value) for value in rows.tolist()]
        return json_answer(V1ValueResponse(card.name, str(card.version), values))
    predictions = class_predictions(card, outputs)
    return json_answer(V1ClassResponse(card.name, str(card.version), predictions))
