"""The one place where errors become HTTP answers: `{"error": "..."}`, never a traceback.

Litestar's exception handlers answer the routes it dispatches; `send_error` answers the
inference routes dispatched before its router (`service.http.direct`) with the same status,
message, headers and body.
"""

from __future__ import annotations

import logging

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE
from litestar.types import Scope, Send

from service.errors import ServeError
from service.http.asgi import body_too_large, send_response

log = logging.getLogger(__name__)
INTERNAL_ERROR = "internal server error; the incident was logged"


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response(
        {"error": message}, status_code=status_code, headers=headers, media_type=MediaType.JSON
    )


def error_answer(error: Exception, method: str, path: str) -> tuple[int, str, dict[str, str]]:
    """Status, message and headers for an error raised on the way to an answer: a domain
    error's own, anything else a logged 500 (call it where the error is being handled)."""
    if isinstance(error, ServeError):
        return error.status_code, str(error), error.headers
    log.exception("unhandled error on %s %s", method, path)
    return 500, INTERNAL_ERROR, {}


async def send_error(send: Send, scope: Scope, error: Exception) -> None:
    """`error_answer` as a bare ASGI response, byte for byte what `error_response` sends."""
    status, message, extra = error_answer(error, scope["method"], scope["path"])
    body = msgspec.json.encode({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()
    ]
    await send_response(send, status, headers, body)


def exception_handlers(max_body_bytes: int) -> dict:
    """Domain errors with their own status, Litestar's HTTP errors with our messages, and
    anything else as a logged 500."""

    def domain_or_unexpected(request: Request, error: Exception) -> Response:
        return error_response(*error_answer(error, request.method, request.url.path))

    def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
            message = body_too_large(max_body_bytes)
        elif error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        return error_response(error.status_code, message, error.headers)

    return {
        ServeError: domain_or_unexpected,
        HTTPException: http_error,
        Exception: domain_or_unexpected,
    }
