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

from service.logs import logging_config
from service.settings import Settings
from service.workers import share_board

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


def main(argv: Sequence[str] | None = None) -> int:
    overrides = parse_args(argv)
    # Workers build their app from the environment (uvicorn calls the factory with no
    # arguments), so the flags travel there as SERVE_* variables.
    for name, value in overrides.items():
        os.environ[f"SERVE_{name.upper()}"] = str(value)
    try:
        settings = Settings()
    except ValidationError as error:
        first = error.errors()[0]
        print(f"mlp-serve: error: {first['loc'][0]}: {first['msg']}", file=sys.stderr)
        return 2
    config = logging_config(settings.log_level)
    logging.config.dictConfig(config)
    made_metrics_dir = prepare_metrics_dir(settings.workers)
    if settings.workers > 1:  # readiness waits for every worker (service.workers)
        share_board(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    # uvicorn re-raises the SIGTERM it handled once it has shut down, under the handler found
    # at start: this one, so that a drained shutdown exits 0 rather than dying by the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(
            "service.http.app:serve_app",
            factory=True,
            log_config=config,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,
            timeout_graceful_shutdown=settings.drain_timeout_s,
        )
    finally:
        if made_metrics_dir is not None:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
