"""Triton's model repository extension: list, load and unload models while serving.

`POST /v2/repository/index`, `POST /v2/repository/models/{name}/load` and `.../unload`; the
bodies tritonclient sends (empty, or JSON with `parameters`) are accepted.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from service.errors import MalformedRequest, ModelLoadFailed
from service.repository import ModelRegistry
from service.routes.openapi import errors
from service.schemas import RepositoryIndexEntry, RepositoryIndexRequest


async def optional_json(request: Request, schema: type[msgspec.Struct]) -> msgspec.Struct:
    body = await request.body()
    if not body.strip():
        return schema()
    try:
        return msgspec.json.decode(body, type=schema)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise MalformedRequest(f"body is not valid: {error}") from None


class RepositoryController(Controller):
    path = "/v2/repository"
    tags = ["Model repository"]

    @post("/index", status_code=200, summary="Every model version and its state")
    async def index(
        self, request: Request, registry: NamedDependency[ModelRegistry]
    ) -> list[RepositoryIndexEntry]:
        query = await optional_json(request, RepositoryIndexRequest)
        assert isinstance(query, RepositoryIndexRequest)
        return [
            RepositoryIndexEntry(row.name, row.version, row.state, row.reason)
            for row in registry.index(ready_only=query.ready)
        ]

    @post(
        "/models/{name:str}/load",
        status_code=200,
        summary="Load or reload a model from the repository (verified and warm before traffic)",
        responses=errors(400, 404, 503),
    )
    async def load(
        self, request: Request, name: FromPath[str], registry: NamedDependency[ModelRegistry]
    ) -> dict[str, str]:
        await optional_json(request, LoadRequest)
        entry = await registry.load(name)
        if entry.failed:
            serving = ", ".join(str(v) for v in sorted(entry.loaded)) or "none"
            raise ModelLoadFailed(
                f"failed to load {name!r}: {entry.reason()}; versions serving: {serving}"
            )
        return {}

    @post(
        "/models/{name:str}/unload",
        status_code=200,
        summary="Stop serving a model; queued requests still complete",
        responses=errors(404, 503),
    )
    async def unload(
        self, request: Request, name: FromPath[str], registry: NamedDependency[ModelRegistry]
    ) -> dict[str, str]:
        await optional_json(request, LoadRequest)
        await registry.unload(name)
        return {}


class LoadRequest(msgspec.Struct, forbid_unknown_fields=False):
    parameters: dict[str, object] = msgspec.field(default_factory=dict)
