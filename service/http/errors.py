"""The one place where errors become HTTP answers: `{"error": "..."}`, never a traceback."""

from __future__ import annotations

import logging

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE

from service.errors import ServeError
from service.http.asgi import body_too_large

log = logging.getLogger(__name__)


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response(
        {"error": message}, status_code=status_code, headers=headers, media_type=MediaType.JSON
    )


def exception_handlers(max_body_bytes: int) -> dict:
    """Domain errors with their own status, Litestar's HTTP errors with our messages, and
    anything else as a logged 500."""

    def serve_error(_: Request, error: ServeError) -> Response:
        return error_response(error.status_code, str(error), error.headers)

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

    def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error; the incident was logged")

    return {ServeError: serve_error, HTTPException: http_error, Exception: unexpected}
