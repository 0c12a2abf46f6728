"""What one request did, for its access-log line and its metrics: the model and version it
reached, the endpoint, and the size of the forward pass its rows went through.

The transport opens a record per request (a context variable, so it follows the request's
own task); the route names the model, and the batcher's observer adds the batch size from the
request's task once its rows are answered. Nothing writes into the ASGI scope.
"""

from __future__ import annotations

from contextvars import ContextVar


class RequestRecord:
    __slots__ = ("batch_size", "endpoint", "model", "version")

    def __init__(self) -> None:
        self.endpoint: str | None = None
        self.model: str | None = None
        self.version: int | None = None
        self.batch_size: int | None = None


current_record: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)


def open_record() -> RequestRecord:
    """A fresh record for the request now running (in its own task)."""
    record = RequestRecord()
    current_record.set(record)
    return record


def note_model(endpoint: str, model: str, version: int) -> None:
    record = current_record.get()
    if record is not None:
        record.endpoint, record.model, record.version = endpoint, model, version


def note_batch(rows: int) -> None:
    """The forward pass that served (the largest part of) this request had `rows` rows."""
    record = current_record.get()
    if record is not None and (record.batch_size is None or rows > record.batch_size):
        record.batch_size = rows
