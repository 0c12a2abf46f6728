"""`python -m service` / `mlp-serve`: serve a model repository with uvicorn."""

from __future__ import annotations

import argparse
import logging.config
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from service.http.server import DrainingSupervisor, HttpLimits, LimitedHttpToolsProtocol
from service.logs import logging_config
from service.settings import Settings
from service.workers import share_board

STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start

# CLI flag -> setting; each also comes from SERVE_<NAME> in the environment.
FLAGS = ("host", "port", "models", "device", "workers")


def parse_args(argv: Sequence[str] | None) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="mlp-serve", description=__doc__)
    parser.add_argument("--host", help="interface (default 127.0.0.1; SERVE_HOST)")
    parser.add_argument("--port", help="port (default 8000; SERVE_PORT)")
    parser.add_argument("--models", help="model repository (default models/; SERVE_MODELS)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto; SERVE_DEVICE)")
    parser.add_argument("--workers", help="worker processes (default 1; SERVE_WORKERS)")
    args = vars(parser.parse_args(argv))
    return {name: value for name, value in args.items() if value is not None}


def describe_invalid(error: ValidationError) -> str:
    """Every invalid setting in one line, each named as the user sets it."""
    problems = []
    for item in error.errors():
        reason = str(item["ctx"]["error"]) if item["type"] == "value_error" else item["msg"]
        if item["loc"]:  # a model-level validator's error has no field
            name = str(item["loc"][0])
            flag = f" (--{name})" if name in FLAGS else ""
            reason = f"SERVE_{name.upper()}{flag}: {reason}"
        problems.append(reason)
    return "; ".join(problems)


def device_problem(device: str) -> str | None:
    """Why a CUDA `device` cannot be used on this machine, or None.

    Checked before uvicorn starts: a worker failing to load would end in a traceback."""
    if not device.startswith("cuda"):
        return None
    import torch  # only for CUDA: every other path of the CLI stays quick

    named = f"device {device!r} (--device, SERVE_DEVICE)"
    _, colon, index = device.partition(":")
    if colon and not index.isdigit():
        return f"{named}: cuda:N needs a device number N"
    if not torch.cuda.is_available():
        return f"{named}: CUDA is not available on this machine; use cpu or auto"
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        return f"{named}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    return None


def fail(reason: str) -> int:
    """One line on stderr and exit status 2, as argparse does for a bad flag."""
    print(f"mlp-serve: error: {' '.join(reason.split())}", file=sys.stderr)
    return 2


def prepare_metrics_dir(workers: int) -> Path | None:
    """Several workers share metrics through files: an empty PROMETHEUS_MULTIPROC_DIR.

    Returns the directory when this process made it (and should remove it at exit).
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory is None and workers == 1:
        return None
    made = directory is None
    if directory is None:
        directory = tempfile.mkdtemp(prefix="mlp-serve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.iterdir():  # counters of a previous run must not leak into this one
        if stale.is_file():
            stale.unlink()
        else:
            shutil.rmtree(stale)
    return path if made else None


def serve(config: uvicorn.Config) -> int:
    """What `uvicorn.run` does, with a supervisor that passes a second SIGTERM on to the
    workers (uvicorn's own waits for them and leaves it unhandled)."""
    if config.workers > 1:
        DrainingSupervisor(config, sockets=[config.bind_socket()]).run()
        return 0
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    overrides = parse_args(argv)
    # Workers build their app from the environment (uvicorn calls the factory with no
    # arguments), so the flags travel there as SERVE_* variables.
    for name, value in overrides.items():
        os.environ[f"SERVE_{name.upper()}"] = str(value)
    try:
        settings = Settings()
        HttpLimits.from_settings(settings)  # the connection cap against the open-file limit
    except ValidationError as error:
        return fail(describe_invalid(error))
    except SettingsError as error:  # a list setting whose value is not JSON
        return fail(f"{error}: the value must be JSON")
    except ValueError as error:  # the connection cap does not fit the open-file limit
        return fail(str(error))
    if problem := device_problem(settings.device):
        return fail(problem)
    config = logging_config(settings.log_level)
    logging.config.dictConfig(config)
    made_metrics_dir = prepare_metrics_dir(settings.workers)
    if settings.workers > 1:  # readiness waits for every worker (service.workers)
        share_board(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    # uvicorn re-raises the SIGTERM it handled once it has shut down, under the handler found
    # at start: this one, so that a drained shutdown exits 0 rather than dying by the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn_config = uvicorn.Config(
        "service.http.app:serve_app",
        factory=True,
        http=LimitedHttpToolsProtocol,  # header limits, read deadlines, connection cap
        log_config=config,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=settings.drain_timeout_s,
    )
    try:
        return serve(uvicorn_config)
    finally:
        if made_metrics_dir is not None:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
