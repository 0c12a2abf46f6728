"""gRPC core's I/O mode, chosen by `import service` before anything imports `grpc`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service import GRPC_POLLING_IO

READ_BACK = "import service, os; print(os.environ['GRPC_EXPERIMENTS'])"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, GRPC_POLLING_IO), ("-event_engine_client", "-event_engine_client")],
)
def test_polling_io_unless_the_operator_chose(given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    if given is not None:
        env["GRPC_EXPERIMENTS"] = given
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == expected
