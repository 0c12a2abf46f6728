"""OpenAPI helpers: request bodies the handlers parse themselves, and the documented errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)
from msgspec import Struct

from service.codecs.schemas import ErrorResponse, inline_json_schema


def with_json_body(
    body: type[Struct],
    description: str,
    example: Any,
    images: bool = False,
    other_examples: dict[str, Example] | None = None,
) -> type[Operation]:
    """An Operation class documenting a JSON body that the handler parses itself (for speed
    and for precise 400/422 errors) rather than through Litestar's `data` parameter; with
    `images`, also the uploads that `:predict-image` takes."""
    schema = inline_json_schema(body)
    examples = {
        "iris": Example(summary="Two iris flowers", value=example),
        **(other_examples or {}),
    }

    @dataclass
    class OperationWithBody(Operation):
        def __post_init__(self) -> None:
            media = OpenAPIMediaType(
                schema=schema,  # type: ignore[arg-type]
                examples=examples,
            )
            content = {"application/json": media, **(IMAGE_BODIES if images else {})}
            self.request_body = RequestBody(content=content, description=description, required=True)
            if images:
                self.parameters = [*(self.parameters or []), RETURN_INPUT]

    return OperationWithBody


RETURN_INPUT = Parameter(
    name="return_input",
    param_in=ParamType.QUERY,
    schema=Schema(type=OpenAPIType.BOOLEAN),
    required=False,
    description=":predict-image only: add each image as the model saw it (base64 PNG)",
)
IMAGE_BODIES = {
    "multipart/form-data": OpenAPIMediaType(
        schema=Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "file": Schema(
                    type=OpenAPIType.ARRAY,
                    items=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
                    description="one or more digit pictures, answered in upload order",
                )
            },
            required=["file"],
        )
    ),
    **{
        media: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY))
        for media in (
            "image/png",
            "image/jpeg",
            "image/webp",
            "image/bmp",
            "image/gif",
            "image/tiff",
        )
    },
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """Document `{"error": ...}` responses for these status codes."""
    descriptions = {
        400: "The body is not valid JSON (NaN, Infinity and out-of-range numbers are not JSON)",
        401: "Missing API key",
        404: "Unknown model or version",
        413: "Too many rows, files or image pixels, or too large a body",
        415: "Unsupported media type, or a file that is not an image",
        422: "Valid JSON or images of the wrong shape, type or values for this model",
        500: "The model failed on this request",
        503: "Overloaded or not ready; see Retry-After",
        504: "Timed out in the queue or the model",
    }
    return {code: ResponseSpec(ErrorResponse, description=descriptions[code]) for code in codes}


INFERENCE_ERRORS = errors(400, 404, 413, 415, 422, 500, 503, 504)


def success(body: Any, description: str, example: Any) -> dict[int, ResponseSpec]:
    """Document the 200 answer with an example, beside the inference errors."""
    spec = ResponseSpec(
        body,
        description=description,
        generate_examples=False,
        examples=[Example(summary="Two iris flowers", value=example)],
    )
    return {200: spec, **INFERENCE_ERRORS}


def union_answers_as_any_of(document: OpenAPI) -> None:
    """Document union answers (feature or image predictions) as anyOf, not Litestar's oneOf:
    an image answer also satisfies the looser feature-prediction schema, and oneOf forbids
    matching both."""
    for path_item in (document.paths or {}).values():
        for operation in (path_item.get, path_item.post):
            for response in (operation.responses or {}).values() if operation else ():
                for media in (getattr(response, "content", None) or {}).values():
                    schema = media.schema
                    if isinstance(schema, Schema) and schema.one_of:
                        schema.any_of, schema.one_of = schema.one_of, None
