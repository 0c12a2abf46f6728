"""Image uploads through `POST /v1/models/mnist:predict-image`: images/s and latency.

    python -m bench.serve_uploads [--connections 16] [--seconds 10] [--rounds 3]

Two uploads of an MNIST test digit (from the committed fixture): the 28x28 PNG itself, and a
280x280 JPEG of it as dark ink on light paper. Raw image bodies, one image per request, the
real server on core 0 and wrk on core 1; medians of alternating rounds. Writes
serve_uploads.{md,json} to --out (bench/runs/).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from bench.harness import (
    ROOT,
    load_arguments,
    lua_script,
    run_wrk,
    serve_command,
    start_server,
)
from bench.uploads import load_test_digits

MNIST_FIXTURE = ROOT / "tests" / "fixtures" / "mnist"


def upload_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """{scenario: (body file, content type)} for the two upload sizes."""
    digits, _ = load_test_digits(MNIST_FIXTURE, first=1)
    digit = Image.fromarray(digits[0])
    files = {}
    png = io.BytesIO()
    digit.save(png, format="PNG")
    files["28x28 PNG"] = (png.getvalue(), "image/png")
    jpeg = io.BytesIO()
    large = ImageOps.invert(digit.resize((280, 280), Image.Resampling.BICUBIC)).convert("RGB")
    large.save(jpeg, format="JPEG", quality=90)
    files["280x280 JPEG"] = (jpeg.getvalue(), "image/jpeg")
    out = {}
    for name, (data, media) in files.items():
        path = folder / name.replace(" ", "_")
        path.write_bytes(data)
        out[name] = (path, media)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return load_arguments("python -m bench.serve_uploads", __doc__, 16).parse_args(argv)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {
            name: lua_script(Path(tmp) / f"{index}.lua", path, media)
            for index, (name, (path, media)) in enumerate(upload_files(Path(tmp)).items())
        }
        server = start_server(serve_command(ROOT / "models"), Path(tmp) / "server.log")
        url = f"{server.base_url}/v1/models/mnist:predict-image"
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in scripts}
        try:
            for script in scripts.values():
                run_wrk(url, script, args.connections, 2)  # warm up
            for _ in range(args.rounds):
                for name, script in scripts.items():
                    runs[name].append(run_wrk(url, script, args.connections, args.seconds))
                    print(name, json.dumps(runs[name][-1]), flush=True)
        finally:
            server.stop()
    medians = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in runs.items()
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_uploads.json").write_text(
        json.dumps({"connections": args.connections, "medians": medians, "runs": runs}, indent=2)
        + "\n"
    )
    lines = [
        f"| mnist :predict-image, 1 image/request, c={args.connections} "
        "| images/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in medians.items():
        lines.append(
            f"| {name} | {m['rps']:.0f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} "
            f"| {m['errors']:.0f} |"
        )
    (args.out / "serve_uploads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
