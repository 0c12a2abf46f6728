"""KServe v1 / TF-Serving JSON: `{"instances": [[...], ...]}` in, `{"predictions": [...]}` out."""

from __future__ import annotations

import numpy as np

from modelrepo.card import ModelSpec
from service.codecs.answer import Answer, json_answer
from service.codecs.decoding import check_row_count, client_errors, decode_json
from service.codecs.schemas import (
    ClassPrediction,
    V1ClassResponse,
    V1PredictRequest,
    V1ValueResponse,
    ValuePrediction,
)
from service.errors import InvalidInput, UnsupportedMediaType

EXAMPLE = '{"instances": [[...], ...]}'


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
    """The instances as a float32 (N, features) block, every one checked against the card."""
    instances = decode_json(body, V1PredictRequest, EXAMPLE, float32_bounds=True).instances
    check_row_count(len(instances), card, max_rows)
    features = card.input.features
    for index, instance in enumerate(instances):
        if len(instance) != features:
            raise InvalidInput(
                f"{card.name} expects {features} features per instance; "
                f"instance {index} has {len(instance)}"
            )
    # Float32 bounds were checked while decoding: the cast cannot overflow.
    return np.array(instances, dtype=np.float32)


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
