"""CPU time per request of the ASGI app itself, with no socket: where the microseconds go.

    python -m bench.asgi_load [--requests 20000] [--concurrency 1 64] [--scenarios ...]

The service's ASGI stack (`serve_app()`: access log, HEAD, Litestar and the bundled models)
and the raw ASGI ceiling (`bench.raw_asgi.app`) get the bench's bodies through synthetic
scope/receive/send, `--concurrency` requests at a time, and the process's CPU time per request
is printed for each scenario: the least of several rounds (other work on a shared machine only
ever adds to it) and their median. What uvicorn does per request (parsing, socket writes) is
outside this figure; on a shared machine it is steadier than wall-clock throughput. With
concurrency above 1, the server's in-flight count says so (as the HTTP protocol would), so
requests batch; at 1 a lone request may run inline.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging.config
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.bodies import IRIS_ROW, mnist_row, v1_json, v2_json

Scope = dict[str, Any]
App = Callable[..., Any]
SCENARIOS = {
    "iris v1": ("/v1/models/iris:predict", lambda: v1_json([IRIS_ROW])),
    "mnist v1": ("/v1/models/mnist:predict", lambda: v1_json([mnist_row()])),
    "iris v2": ("/v2/models/iris/infer", lambda: v2_json([IRIS_ROW])),
}


def scope_of(path: str) -> Scope:
    """A POST's scope as uvicorn's httptools protocol builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"user-agent", b"wrk"),
        ],
        "state": {},
    }


async def one_request(app: App, path: str, body: bytes) -> int:
    """One request through `app`; returns its status (asserting an answer came whole)."""
    scope = scope_of(path)
    scope["headers"].append((b"content-length", str(len(body)).encode()))
    sent: list[dict[str, Any]] = []
    delivered = False
    never = asyncio.get_running_loop().create_future()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await never  # uvicorn: until the client disconnects

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[-1]["type"] == "http.response.body"
    assert not sent[-1].get("more_body")
    return sent[0]["status"]


async def load(app: App, path: str, body: bytes, requests: int, concurrency: int) -> float:
    """CPU seconds per request over `requests`, `concurrency` at a time."""
    from service.in_flight import REQUESTS

    async def client(count: int) -> None:
        for _ in range(count):
            status = await one_request(app, path, body)
            assert status == 200, status

    share = requests // concurrency
    # Every client has a request in the server all along, as under wrk: a request that never
    # waits would otherwise finish before the next client starts, and always run alone.
    REQUESTS.requests += concurrency
    began = time.process_time()
    try:
        await asyncio.gather(*(client(share) for _ in range(concurrency)))
    finally:
        REQUESTS.requests -= concurrency
    return (time.process_time() - began) / (share * concurrency)


async def start_service() -> tuple[App, Callable[[], Any]]:
    """`serve_app()` over the bundled models, its lifespan started and every model ready."""
    from service.http.app import serve_app
    from service.http.state import app_services

    app = serve_app()
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await messages.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "state": {}}, messages.get, send))
    await started.wait()
    litestar = app.app.app
    await app_services(litestar).registry.loaded.wait()

    async def stop() -> None:
        await messages.put({"type": "lifespan.shutdown"})
        await task

    return app, stop


def quiet_logs() -> None:
    """JSON logs at INFO as `python -m service` has them, written to a discarded buffer (the
    access log still builds and encodes its line)."""
    from service.logs import logging_config

    logging.config.dictConfig(logging_config("info"))
    sys.stderr = io.TextIOWrapper(open(os.devnull, "wb"))  # noqa: SIM115


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("SERVE_MODELS", "models")
    os.environ.setdefault("SERVE_GRPC_PORT", "0")
    os.environ.setdefault("SERVE_DEVICE", "cpu")
    quiet_logs()
    from bench.raw_asgi import app as raw_app

    service_app, stop = await start_service()
    apps = {"mlp-serve": service_app, "raw ASGI": raw_app}
    apps = {system: apps[system] for system in args.systems}
    for name in args.scenarios:
        path, make_body = SCENARIOS[name]
        body = make_body()
        for concurrency in args.concurrency:
            for system, app in apps.items():
                await load(app, path, body, args.requests // 10, concurrency)  # warm-up
                figures = [
                    await load(app, path, body, args.requests, concurrency)
                    for _ in range(args.rounds)
                ]
                low, middle = min(figures) * 1e6, statistics.median(figures) * 1e6
                print(
                    f"{name:9} c={concurrency:<3} {system:10} {low:6.1f} us per request "
                    f"(median of {args.rounds}: {middle:.1f})",
                    flush=True,
                )
    await stop()


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out.add_argument("--requests", type=int, default=4_000, help="per round")
    out.add_argument("--rounds", type=int, default=7)
    out.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    out.add_argument("--systems", nargs="+", default=["mlp-serve", "raw ASGI"])
    out.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


if __name__ == "__main__":
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as uvicorn runs
        runner.run(main(parse_args()))
