"""LitServe serving the bundled iris TorchScript model with its dynamic batching.

    bench/.venv-litserve/bin/python bench/litserve_app.py PORT [--batch-timeout 0.005]

Run with LitServe's own venv (it pulls uvicorn[standard] and FastAPI, which the project's venv
must not get). `POST /predict` takes the service's KServe v1 body, `{"instances": [[...]]}`, and
answers the same predictions; `GET /health` is 200 once the inference worker is set up. One
inference worker on the CPU, one API server process, batches of up to 64 requests.
"""

import argparse
import json
from pathlib import Path

import litserve as ls
import torch

IRIS = Path(__file__).resolve().parent.parent / "models" / "iris"


def latest_version(model_dir: Path) -> Path:
    """The highest numbered version: the one the service answers unversioned requests with."""
    versions = [p for p in model_dir.iterdir() if p.name.isdigit() and (p / "model.pt").exists()]
    return max(versions, key=lambda p: int(p.name))


class IrisAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        torch.set_num_threads(1)
        self.folder = latest_version(IRIS)
        self.model = torch.jit.load(str(self.folder / "model.pt"), map_location=device).eval()
        card = json.loads((self.folder / "card.json").read_text())
        self.class_names: list[str] = card["output"]["class_names"]
        self.sizes: list[int] = []

    # No annotations on the request and the response: LitServe would hand them to FastAPI as
    # models to validate. Unannotated, the request arrives as parsed JSON and the answer is JSON.
    def decode_request(self, request):
        return torch.tensor(request["instances"], dtype=torch.float32)

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        self.sizes = [len(rows) for rows in inputs]  # one worker: batch, predict, unbatch in turn
        return torch.cat(inputs)

    def predict(self, rows: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(rows)

    def unbatch(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(outputs, self.sizes))

    def encode_response(self, outputs):
        labels = outputs.argmax(dim=1).tolist()
        predictions = [
            {"label": label, "class_name": self.class_names[label], "probabilities": probabilities}
            for label, probabilities in zip(labels, outputs.tolist(), strict=True)
        ]
        return {
            "model_name": "iris",
            "model_version": self.folder.name,
            "predictions": predictions,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout", type=float, default=0.005, help="seconds")
    parser.add_argument("--fast-queue", action="store_true", help="ZeroMQ instead of mp queues")
    args = parser.parse_args()
    api = IrisAPI(max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    server = ls.LitServer(
        api, accelerator="cpu", workers_per_device=1, fast_queue=args.fast_queue, timeout=30
    )
    server.run(
        host="127.0.0.1",
        port=args.port,
        generate_client_file=False,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
