"""The naive server: the same TorchScript models called inline in Litestar handlers.

    python -m bench.naive --port 8002

What most first versions look like: no batching, no thread, no queue; each request decodes its
body, runs its forward pass on the event loop (torch.inference_mode, one intra-op thread) and
answers. Image uploads go through the service's own preprocessing (`service.codecs.images`), inline.
Same uvicorn options as `python -m service`; no logs. `GET /v1/models/{name}` counts rows and
forward passes like the service, so the benchmark reads both the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import torch
from litestar import Litestar, Request, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath

from bench.harness import latest_version, serve_reference
from bench.wire import V1Request, V2Request
from modelrepo import torchscript as jit
from service.codecs import images

MODELS = Path(__file__).resolve().parent.parent / "models"
MAX_IMAGE_PIXELS = 40_000_000


class Model:
    """One TorchScript model, its class names and how often it ran."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = latest_version(MODELS / name)
        folder = MODELS / name / self.version
        self.module = jit.load(folder / "model.pt")
        self.module.eval()
        card = json.loads((folder / "card.json").read_text())
        self.class_names: list[str] = card["output"]["class_names"]
        self.rows = self.batches = 0

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            outputs = self.module(rows)
        self.rows += len(rows)
        self.batches += 1
        return outputs

    def predict(self, rows: torch.Tensor) -> list[dict[str, Any]]:
        outputs = self.forward(rows)
        labels = outputs.argmax(dim=1).tolist()
        return [
            {"label": label, "class_name": self.class_names[label], "probabilities": probabilities}
            for label, probabilities in zip(labels, outputs.tolist(), strict=True)
        ]


def create_app() -> Litestar:
    torch.set_num_threads(1)
    models = {name: Model(name) for name in ("iris", "mnist")}

    @post("/v1/models/{target:str}", status_code=200)
    async def predict(request: Request, target: FromPath[str]) -> dict[str, Any]:
        name, _, verb = target.partition(":")
        model = models[name]
        if verb == "predict-image":
            rows = torch.from_numpy(await read_digit(request)).reshape(1, -1)
        else:
            instances = msgspec.json.decode(await request.body(), type=V1Request).instances
            rows = torch.tensor(instances, dtype=torch.float32)
        predictions = model.predict(rows)
        return {"model_name": name, "model_version": model.version, "predictions": predictions}

    @post("/v2/models/{name:str}/infer", status_code=200)
    async def infer(request: Request, name: FromPath[str]) -> dict[str, Any]:
        tensor = msgspec.json.decode(await request.body(), type=V2Request).inputs[0]
        rows = torch.tensor(tensor.data, dtype=torch.float32).reshape(tensor.shape)
        outputs = models[name].forward(rows)
        output = {"name": "OUTPUT__0", "datatype": "FP32", "shape": list(outputs.shape)}
        output["data"] = outputs.reshape(-1).tolist()
        return {"model_name": name, "model_version": models[name].version, "outputs": [output]}

    @get("/v1/models/{name:str}")
    async def status(name: FromPath[str]) -> dict[str, Any]:
        model = models[name]
        counters = {"rows_inferred": model.rows, "batches": model.batches}
        return {"name": name, "default_version": model.version, "stats": {model.version: counters}}

    @get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return Litestar([predict, infer, status, ready], logging_config=None, debug=False)


async def read_digit(request: Request) -> Any:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        part = (await request.form())["file"]
        data = await part.read() if isinstance(part, UploadFile) else b""
    else:
        data = await request.body()
    return images.preprocess_digit(images.decode(data, MAX_IMAGE_PIXELS))


def main() -> None:
    serve_reference(create_app(), __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
