"""What every codec checks the same way: JSON bodies (400 or 422), row counts, float32 values.

Everything a client can get wrong is caught here with a message that says what to fix. Whether
a bad body is a 400 or a 422 is decided by its structure, never by a library's error text: a
body that no schema could read (not JSON, or numbers no float holds) is malformed, a JSON
document of the wrong shape or values is invalid input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import msgspec
import numpy as np

from modelrepo.card import ModelSpec
from service.codecs.schemas import FLOAT32_MAX
from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge, ServeError

FINITE_FLOAT32 = f"values must be finite and fit in float32 (|x| <= {FLOAT32_MAX:.4g})"
TOO_DEEP = "the JSON is nested too deeply; a tensor's data needs at most one level per dimension"
UTF8_BOM = b"\xef\xbb\xbf"

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


def decode_json(body: bytes, schema: type[T], example: str, float32_bounds: bool = False) -> T:
    """Decode `body` into `schema`; 400 for broken JSON, 422 for JSON of the wrong shape.

    With `float32_bounds`, the schema bounds its numbers to float32 (`schemas.Float32`), and a
    number beyond them is reported as such, with where it is.
    """
    if not body:
        raise MalformedRequest(f"the request body is empty; send JSON like {example}")
    if body.startswith(UTF8_BOM):  # RFC 8259 lets a parser ignore it; some editors write one
        body = body[len(UTF8_BOM) :]
    try:
        return msgspec.json.decode(body, type=schema)
    except msgspec.ValidationError as error:
        raise schema_error(body, error, example, float32_bounds) from None
    except msgspec.DecodeError as error:
        raise MalformedRequest(
            f"body is not valid JSON ({error}); NaN and Infinity are not JSON numbers"
        ) from None
    except RecursionError:
        raise MalformedRequest(TOO_DEEP) from None


def schema_error(
    body: bytes, error: msgspec.ValidationError, example: str, float32_bounds: bool
) -> ServeError:
    """Why a body that failed the schema failed: read once more as plain JSON to tell."""
    try:
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):  # e.g. 1e400: no float holds it
        return MalformedRequest(f"body is not valid JSON: {error}")
    except RecursionError:
        return MalformedRequest(TOO_DEEP)
    if float32_bounds and (where := beyond_float32(document, "$")) is not None:
        return InvalidInput(f"{FINITE_FLOAT32}; at `{where}`")
    return InvalidInput(f"{error}; send JSON like {example}")


def client_errors(decode: Callable[P, R]) -> Callable[P, R]:
    """Whatever a decoder raises is about the request, never a server failure: its own errors
    pass as they are, anything else (a library's surprise on a hostile body) becomes a 400."""

    @functools.wraps(decode)
    def decoding(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return decode(*args, **kwargs)
        except ServeError:
            raise
        except RecursionError:
            raise MalformedRequest(TOO_DEEP) from None
        except Exception as error:
            raise MalformedRequest(f"the request cannot be read ({type(error).__name__})") from None

    return decoding


def beyond_float32(node: Any, path: str) -> str | None:
    """The path (msgspec's notation) of the first number in `node` that float32 cannot hold."""
    if isinstance(node, float | int) and not isinstance(node, bool):
        return path if abs(node) > FLOAT32_MAX else None
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        where = beyond_float32(value, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if where is not None:
            return where
    return None


def check_row_count(count: int, card: ModelSpec, max_rows: int) -> None:
    """N in [1, max_rows]: checked on the declared count, before any array is built."""
    if count == 0:
        raise InvalidInput(f"no rows to infer; {card.name} expects at least one")
    if count > max_rows:
        raise PayloadTooLarge(
            f"{count} rows in one request; the limit is {max_rows}, split the request"
        )


def check_finite(rows: np.ndarray) -> np.ndarray:
    """Every value finite once in float32 (too large a number overflows to inf)."""
    if not np.isfinite(rows).all():
        raise InvalidInput(FINITE_FLOAT32)
    return rows
