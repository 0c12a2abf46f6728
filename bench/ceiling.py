"""The framework ceiling: Litestar under uvicorn as our server runs it, doing no inference.

    python -m bench.ceiling --port 8001

Same routes and bodies as the service: `:predict` parses the JSON instances with msgspec,
`:predict-image` reads the image (raw body, or the `file` part of a multipart form), v2 `infer`
parses the tensor; each answers a constant prediction. Same uvicorn options as `python -m service`
(httptools, uvloop, one worker, access log off). What the service does beyond this (validation,
batching, the model, logs and metrics) is what the ratio to this server measures.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath

from bench.harness import serve_reference
from bench.wire import V1Request, V2Request, image_answer, v1_answer, v2_answer


@post("/v1/models/{target:str}", status_code=200)
async def predict(request: Request, target: FromPath[str]) -> dict[str, Any]:
    if target.endswith(":predict-image"):
        return await predict_image(request)
    rows = msgspec.json.decode(await request.body(), type=V1Request).instances
    return v1_answer(len(rows))


async def predict_image(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        part = (await request.form())["file"]
        data = await part.read() if isinstance(part, UploadFile) else b""
    else:
        data = await request.body()
    return image_answer(len(data))


@post("/v2/models/{name:str}/infer", status_code=200)
async def infer(request: Request, name: FromPath[str]) -> dict[str, Any]:
    msgspec.json.decode(await request.body(), type=V2Request)
    return v2_answer(name)


@get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


def create_app() -> Litestar:
    return Litestar([predict, infer, ready], logging_config=None, debug=False)


def main() -> None:
    serve_reference(create_app(), __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
