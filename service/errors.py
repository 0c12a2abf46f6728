"""The service's exception hierarchy. Each error knows its HTTP status; `app.py` maps them once."""

from __future__ import annotations


class ServeError(Exception):
    """Base class: `str(error)` is the message the client sees as `{"error": ...}`."""

    status_code = 500
    headers: dict[str, str] = {}


class MalformedRequest(ServeError):
    """The body cannot be parsed (not JSON, NaN, numbers out of range, bad binary framing)."""

    status_code = 400


class InvalidInput(ServeError):
    """Well-formed, but the wrong shape, type or values for this model."""

    status_code = 422


class ModelNotFound(ServeError):
    status_code = 404


class ModelLoadFailed(ServeError):
    """A repository load left some version unloaded (the serving ones keep serving)."""

    status_code = 400


class PayloadTooLarge(ServeError):
    status_code = 413


class UnsupportedMediaType(ServeError):
    status_code = 415


class Unavailable(ServeError):
    """Try again later: the server, the model or its queue cannot take the request now."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class ModelNotReady(Unavailable):
    pass


class Overloaded(Unavailable):
    pass


class TimedOut(ServeError):
    status_code = 504


class InferenceFailed(ServeError):
    """The model's forward pass raised for this request's own rows."""

    status_code = 500


class Unauthorized(ServeError):
    """No API key where one is required."""

    status_code = 401
    headers = {"WWW-Authenticate": 'Bearer realm="mlp-serve"'}


class Forbidden(ServeError):
    """An API key that is not the configured one."""

    status_code = 403


class ClientDisconnected(ServeError):
    """The client went away before its answer was ready (no one is left to see this)."""

    status_code = 499
