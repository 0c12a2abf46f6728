"""The raw ASGI ceiling: a bare ASGI callable under uvicorn as our server runs it, no framework.

    python -m bench.raw_asgi --port 8003

The limit of a Python server on this stack: the same uvicorn options as `python -m service`
(httptools, uvloop, one worker, access log off), the same routes and the same work per body as
the Litestar ceiling (bench/ceiling.py): `:predict` decodes the JSON instances and v2 `infer`
the tensor with the same msgspec Structs, `:predict-image` reads the image (the raw body, or the
`file` part of a multipart form parsed with the `multipart` library the service uses), and each
answers the same constant, encoded with msgspec. What Litestar adds on top (routing, the request
and response objects, the form's spooled files) is the gap between the two ceilings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from multipart import MultipartSegment, ParserError, PushMultipartParser, parse_options_header

from bench.harness import serve_reference
from bench.wire import V1Request, V2Request, image_answer, v1_answer, v2_answer

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Answer = tuple[int, Any]

FILE_FIELD = "file"
NOT_FOUND: Answer = (404, {"status_code": 404, "detail": "Not Found"})  # Litestar's 404


class BadRequest(Exception):
    """A body the route cannot parse: answered 400 with the parser's reason."""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI callable uvicorn serves."""
    if scope["type"] == "lifespan":
        await run_lifespan(receive, send)
    elif scope["type"] == "http":
        try:
            status, answer = await route(scope, receive)
        except (msgspec.DecodeError, BadRequest) as error:
            status, answer = 400, {"status_code": 400, "detail": str(error)}
        await send_json(send, status, answer)


async def run_lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop, but answering the lifespan keeps uvicorn's start-up and
    shutdown the same as for the framework servers."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def route(scope: Scope, receive: Receive) -> Answer:
    """The ceiling's routes, matched by hand: one path segment per name, as Litestar's `{:str}`."""
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/v2/health/ready":
        return 200, {"ready": True}
    if method != "POST":
        return NOT_FOUND
    target = path.removeprefix("/v1/models/")
    if target != path and "/" not in target:
        if target.endswith(":predict"):
            rows = msgspec.json.decode(await read_body(receive), type=V1Request).instances
            return 200, v1_answer(len(rows))
        if target.endswith(":predict-image"):
            return 200, image_answer(len(await read_image(scope, receive)))
    name = path.removeprefix("/v2/models/").removesuffix("/infer")
    if path.startswith("/v2/models/") and path.endswith("/infer") and name and "/" not in name:
        msgspec.json.decode(await read_body(receive), type=V2Request)
        return 200, v2_answer(name)
    return NOT_FOUND


async def read_body(receive: Receive) -> bytes:
    """The whole request body, as Litestar's `request.body()` gathers it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def read_image(scope: Scope, receive: Receive) -> bytes:
    """The uploaded image: the raw body, or the `file` part of a multipart form."""
    content_type = header(scope, b"content-type")
    body = await read_body(receive)
    if not content_type.startswith("multipart/form-data"):
        return body
    boundary = parse_options_header(content_type)[1].get("boundary")
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary parameter")
    return file_part(body, boundary)


def file_part(body: bytes, boundary: str) -> bytes:
    """The first `file` part of a multipart form (empty if none, as the Litestar ceiling reads
    a missing part). The whole form is parsed, as `request.form()` parses it."""
    found: bytes | None = None
    segment: MultipartSegment | None = None
    data = bytearray()
    try:
        with PushMultipartParser(boundary) as parser:
            for chunk in (body, b""):
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment, data = event, bytearray()
                    elif event:
                        data += event
                    elif segment is not None and segment.name == FILE_FIELD and found is None:
                        found = bytes(data)
    except ParserError as error:
        raise BadRequest(f"the multipart/form-data body is malformed: {error}") from None
    return found or b""


def header(scope: Scope, name: bytes) -> str:
    """One request header's value ("" if absent); ASGI names are lower case."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


async def send_json(send: Send, status: int, answer: Any) -> None:
    body = msgspec.json.encode(answer)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    serve_reference(app, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
