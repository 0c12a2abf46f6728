"""The request bodies of the benchmark scenarios: every system gets the same bytes.

JSON rows (iris, one MNIST digit as 784 floats), an OIP v2 iris request, and the digit uploads of
`bench.serve_uploads` as raw image bodies or as a multipart form with one `file` part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.serve_uploads import MNIST_FIXTURE, upload_files

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
BOUNDARY = "----mlp-serve-bench-7d3f0a9c"


@dataclass(frozen=True)
class Body:
    path: Path
    content_type: str


def v1_json(rows: list[list[float]]) -> bytes:
    return json.dumps({"instances": rows}, separators=(",", ":")).encode()


def v2_json(rows: list[list[float]]) -> bytes:
    tensor = {
        "name": "INPUT__0",
        "shape": [len(rows), len(rows[0])],
        "datatype": "FP32",
        "data": [value for row in rows for value in row],
    }
    return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


def multipart_body(data: bytes, filename: str, media_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file part named `file`, and its Content-Type."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {media_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head + data + tail, f"multipart/form-data; boundary={BOUNDARY}"


def mnist_row() -> list[float]:
    """The first MNIST test digit (the upload scenarios' digit) as 784 floats in [0, 1]."""
    from bench.uploads import load_test_digits

    digits, _ = load_test_digits(MNIST_FIXTURE, first=1)
    return [round(float(v), 4) for v in (digits[0].reshape(-1) / np.float32(255))]


def write_bodies(folder: Path) -> dict[str, Body]:
    """Every scenario's body, by name, written as files for wrk's Lua scripts to read."""
    bodies: dict[str, tuple[bytes, str]] = {
        "iris-v1": (v1_json([IRIS_ROW]), "application/json"),
        "iris-v2": (v2_json([IRIS_ROW]), "application/json"),
        "mnist-v1": (v1_json([mnist_row()]), "application/json"),
    }
    uploads = upload_files(folder)
    png_path, png_type = uploads["28x28 PNG"]
    jpeg_path, jpeg_type = uploads["280x280 JPEG"]
    bodies["png-raw"] = (png_path.read_bytes(), png_type)
    bodies["jpeg-raw"] = (jpeg_path.read_bytes(), jpeg_type)
    bodies["png-multipart"] = multipart_body(png_path.read_bytes(), "digit.png", png_type)
    out = {}
    for name, (data, content_type) in bodies.items():
        path = folder / f"{name}.body"
        path.write_bytes(data)
        out[name] = Body(path, content_type)
    return out
