"""Wire types: what clients send and receive, as msgspec structs (fast to decode, documented).

KServe v1 / TF-Serving (`/v1/...`) and the Open Inference Protocol v2 (`/v2/...`), whose JSON
shapes follow the KServe and Triton specifications so their clients work unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Struct, field

from modelrepo.card import FLOAT32_MAX


class ErrorResponse(Struct):
    error: str


# KServe v1 ------------------------------------------------------------------------------


Float32 = Annotated[float, msgspec.Meta(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
"""A JSON number that stays finite as float32: checked while decoding, not after."""


FeatureList = Annotated[
    list[Float32], msgspec.Meta(description="an instance as the card's features, in its order")
]
NamedInstance = Annotated[
    dict[str, Any],
    msgspec.Meta(
        extra_json_schema={
            "additionalProperties": {
                "type": "number",
                "minimum": -FLOAT32_MAX,
                "maximum": FLOAT32_MAX,
            },
            "description": "an instance keyed by the card's feature names, in any order",
        }
    ),
]
"""One instance as `{"feature name": value, ...}`. Its values are checked by the codec, which
names the feature at fault (msgspec's own message could not); the schema documents numbers."""


class V1PredictRequest(Struct, forbid_unknown_fields=False):
    """`{"instances": [[...], ...]}`: each instance one feature vector in the model's raw units,
    as a list in the card's feature order or as an object keyed by the card's feature names."""

    instances: list[FeatureList | NamedInstance]


class V1ListRequest(Struct, forbid_unknown_fields=False):
    """A `V1PredictRequest` whose instances are all lists: the hot path's schema."""

    instances: list[list[Float32]]


class RawInstances(Struct, forbid_unknown_fields=False):
    """The instances of a v1 request as their JSON text, for what a typed decode cannot tell."""

    instances: msgspec.Raw


class ClassPrediction(Struct, omit_defaults=True, kw_only=True):
    """A classifier's answer for one instance (`class_name` where the model names classes)."""

    label: int
    class_name: str | None = None
    probabilities: list[float]


class ValuePrediction(Struct):
    """A regressor's answer for one instance: its value, or its values where the model has
    several outputs (a Triton model without labels)."""

    value: float | list[float]


class V1ClassResponse(Struct):
    model_name: str
    model_version: str
    predictions: list[ClassPrediction]


class V1ValueResponse(Struct):
    model_name: str
    model_version: str
    predictions: list[ValuePrediction]


V1PredictResponse = V1ClassResponse | V1ValueResponse


class ImagePrediction(Struct, omit_defaults=True, kw_only=True):
    """One uploaded image's answer; `input_png` (base64 PNG) is the 28x28 the model saw.
    `digit_score` is the top probability: a model trained on pictures of no digit spreads its
    probabilities over the classes for them, so a low score says the picture holds none;
    `not_a_digit` is that score below the server's threshold (the answer is still given)."""

    filename: str | None
    label: int
    class_name: str | None
    probabilities: list[float]
    digit_score: float
    not_a_digit: bool
    input_png: str | None = None


class V1ImageResponse(Struct):
    model_name: str
    model_version: str
    predictions: list[ImagePrediction]


class V1ModelList(Struct):
    models: list[str]


class VersionStats(Struct):
    """One loaded version as it serves: the runtime and device it runs on, and its batching
    counters (rows_inferred / batches is the mean batch size)."""

    runtime: str
    device: str
    rows_inferred: int
    batches: int
    queued_rows: int
    max_batch_size: int
    max_queue_delay_ms: float
    inline_max_rows: int = 0
    inline_requests: int = 0
    has_card: bool = True  # False: a Triton model served from its config.pbtxt alone


class V1ModelStatus(Struct):
    name: str
    ready: bool
    versions: list[str]
    default_version: str | None
    card: dict[str, Any] | None
    has_card: bool | None = None  # the default version's (None: no version loaded)
    reason: str | None = None
    failed_versions: dict[str, str] = field(default_factory=dict)
    stats: dict[str, VersionStats] = field(default_factory=dict)


# Triton's model repository extension ----------------------------------------------------


class RepositoryIndexRequest(Struct, forbid_unknown_fields=False):
    ready: bool = False


class RepositoryIndexEntry(Struct):
    name: str
    version: str
    state: str
    reason: str


# Open Inference Protocol v2 -------------------------------------------------------------


class TensorMetadata(Struct):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(Struct, omit_defaults=True):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] | None = None  # {"has_card": false} for a model without one


class V2ServerMetadata(Struct):
    name: str
    version: str
    extensions: list[str]


class V2ModelReady(Struct):
    name: str
    ready: bool


class V2RequestTensor(Struct, omit_defaults=True):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


class V2RequestedOutput(Struct, omit_defaults=True):
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


class V2InferRequest(Struct, omit_defaults=True):
    inputs: list[V2RequestTensor]
    id: str | None = None
    outputs: list[V2RequestedOutput] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


class V2ResponseTensor(Struct, omit_defaults=True):
    name: str
    datatype: str
    shape: list[int]
    data: list[float | str] | None = None  # strings: the classification extension
    parameters: dict[str, Any] | None = None


class V2InferResponse(Struct, omit_defaults=True):
    model_name: str
    model_version: str
    outputs: list[V2ResponseTensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None


def inline_json_schema(struct: type[Struct]) -> dict[str, Any]:
    """The JSON Schema of `struct` with every `$ref` inlined, to embed in an OpenAPI operation."""
    (root,), definitions = msgspec.json.schema_components([struct], ref_template="{name}")

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(root)
