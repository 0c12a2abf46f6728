"""Triton's model repository extension: list, load and unload models while serving.

`POST /v2/repository/index`, `POST /v2/repository/models/{name}/load` and `.../unload`; the
bodies tritonclient sends (empty, or JSON with `parameters`) are accepted.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from litestar import Controller, Request, post
from litestar.params import FromPath

from service.codecs.decoding import TOO_DEEP
from service.codecs.schemas import RepositoryIndexEntry, RepositoryIndexRequest
from service.errors import MalformedRequest
from service.http.routes.openapi import errors
from service.http.state import services

S = TypeVar("S", bound=msgspec.Struct)


async def optional_json(request: Request, schema: type[S]) -> S:
    """The body as `schema`, or its defaults when the body is empty (tritonclient sends none)."""
    body = await request.body()
    if not body.strip():
        return schema()
    try:
        return msgspec.json.decode(body, type=schema)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise MalformedRequest(f"body is not valid: {error}") from None
    except RecursionError:
        raise MalformedRequest(TOO_DEEP) from None


class RepositoryController(Controller):
    path = "/v2/repository"
    tags = ["Model repository"]

    @post("/index", status_code=200, summary="Every model version and its state")
    async def index(self, request: Request) -> list[RepositoryIndexEntry]:
        query = await optional_json(request, RepositoryIndexRequest)
        return [
            RepositoryIndexEntry(row.name, row.version, row.state, row.reason)
            for row in services(request).registry.index(ready_only=query.ready)
        ]

    @post(
        "/models/{name:str}/load",
        status_code=200,
        summary="Load or reload a model from the repository (verified and warm before traffic)",
        responses=errors(400, 404, 503),
    )
    async def load(self, request: Request, name: FromPath[str]) -> dict[str, str]:
        await optional_json(request, LoadRequest)
        (await services(request).registry.load(name)).raise_if_failed()
        return {}

    @post(
        "/models/{name:str}/unload",
        status_code=200,
        summary="Stop serving a model; queued requests still complete",
        responses=errors(404, 503),
    )
    async def unload(self, request: Request, name: FromPath[str]) -> dict[str, str]:
        await optional_json(request, LoadRequest)
        await services(request).registry.unload(name)
        return {}


class LoadRequest(msgspec.Struct, forbid_unknown_fields=False):
    parameters: dict[str, object] = msgspec.field(default_factory=dict)
