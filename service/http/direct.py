"""The inference routes, dispatched before Litestar's router.

`POST /v1/models/{name}[/versions/{v}]:predict` and `POST /v2/models/{name}[/versions/{v}]/infer`
are most of a server's requests, and on them Litestar's router, request object, signature
parsing and exception middleware cost more than the rest of an iris prediction (README,
Performance). `ServeApp` matches those paths by hand and runs the routes' own functions
(`predict_rows`, `infer_tensors`: the Litestar handlers call the same ones) with the same API
key check and the same error answers (`service.http.errors.send_error`). Litestar keeps every
other route, documents these ones in the OpenAPI, and still answers them where this layer
steps aside: any path it does not match exactly (trailing slashes, empty segments, other
verbs such as `:predict-image`), a `root_path`, and a request with an `Origin` when CORS is on
(Litestar's CORS middleware then adds its headers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.types import Receive, Scope, Send

from service.api_key import check_key, presented_key
from service.codecs.answer import Answer
from service.http.asgi import Connection, RawRequest, answer_headers, header, send_response
from service.http.errors import send_error
from service.http.inference import served_model
from service.http.routes.v1 import ENDPOINTS, predict_rows
from service.http.routes.v2 import INFER_ENDPOINT, infer_tensors
from service.http.state import app_services
from service.loading import LoadedModel
from service.services import Services

Handler = Callable[[Connection, Services, LoadedModel], Awaitable[Answer]]
V1, V2 = "/v1/models/", "/v2/models/"
PREDICT = ":predict"


class Route:
    """A matched inference request: the route's function, its metrics label, the model."""

    __slots__ = ("endpoint", "handler", "name", "version")

    def __init__(self, handler: Handler, endpoint: str, name: str, version: str | None) -> None:
        self.handler = handler
        self.endpoint = endpoint
        self.name = name
        self.version = version


def match(path: str) -> Route | None:
    """The inference route of `path` exactly as Litestar's `{...:str}` segments would match
    it, or None (Litestar routes it)."""
    if path.startswith(V1):
        return match_v1(path[len(V1) :])
    if path.startswith(V2):
        return match_v2(path[len(V2) :].split("/"))
    return None


def match_v1(rest: str) -> Route | None:
    """`{name}:predict` or `{name}/versions/{v}:predict`."""
    if not rest.endswith(PREDICT):
        return None
    parts = rest[: -len(PREDICT)].split("/")
    if len(parts) == 1 and parts[0]:
        return Route(predict_rows, ENDPOINTS["predict"], parts[0], None)
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return Route(predict_rows, ENDPOINTS["predict"], parts[0], parts[2])
    return None


def match_v2(parts: list[str]) -> Route | None:
    """`{name}/infer` or `{name}/versions/{v}/infer`."""
    if parts[-1] != "infer" or not parts[0]:
        return None
    if len(parts) == 2:
        return Route(infer_tensors, INFER_ENDPOINT, parts[0], None)
    if len(parts) == 4 and parts[1] == "versions" and parts[2]:
        return Route(infer_tensors, INFER_ENDPOINT, parts[0], parts[2])
    return None


class ServeApp(Litestar):
    """Litestar, with the inference routes answered before its router (module docstring)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.server = app_services(self)
        self.cors = bool(self.server.settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        route = self.direct_route(scope)
        if route is None:
            await super().__call__(scope, receive, send)
        else:
            await self.answer(route, scope, receive, send)

    def direct_route(self, scope: Scope) -> Route | None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        if self.cors and any(name == b"origin" for name, _ in scope["headers"]):
            return None
        return match(scope["path"])

    async def answer(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        """What the Litestar handler and its exception handlers would send, without them."""
        request = RawRequest(scope, receive)
        server = self.server
        try:
            if server.settings.api_key is not None:
                check_key(
                    server.settings, presented_key(lambda name: header(request, name.encode()))
                )
            model = served_model(server, route.name, route.version, route.endpoint)
            answer = await route.handler(request, server, model)
        except Exception as error:
            await send_error(send, scope, error)
            return
        await send_response(send, 200, answer_headers(answer), answer.body)
