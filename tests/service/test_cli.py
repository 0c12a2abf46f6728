"""`python -m service` refusing what it cannot serve: one line on stderr, exit 2, no traceback.

Each case runs the real CLI in a subprocess, bound to 127.0.0.1 port 0 and bounded in time: a
regression that started the server instead would fail on the timeout, not serve on port 8000.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest
import torch

from tests.conftest import MODELS_DIR, ROOT

CLI_TIMEOUT_S = 120


def run_cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SERVE_")}
    env.update({"SERVE_GRPC_PORT": "0"} | {f"SERVE_{k.upper()}": v for k, v in settings.items()})
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", "0"]
    return subprocess.run(
        [*command, "--models", str(MODELS_DIR), *args],
        capture_output=True,
        check=False,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=CLI_TIMEOUT_S,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *reasons: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mlp-serve: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    for reason in reasons:
        assert reason in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "settings", "reasons"),
    [
        # A model-level validator's error has no field (its `loc` is empty).
        ([], {"drain_timeout_s": "5"}, ["drain_timeout_s must be >= request_timeout_s"]),
        (["--port", "http"], {}, ["SERVE_PORT (--port): Input should be a valid integer"]),
        (["--device", "tpu"], {}, ["SERVE_DEVICE (--device): device must be auto, cpu"]),
        ([], {"max_header_bytes": "100"}, ["SERVE_MAX_HEADER_BYTES: Input should be greater"]),
        ([], {"cors_origins": "https://a.example"}, ['field "cors_origins"', "must be JSON"]),
        (
            ["--workers", "0"],
            {"max_headers": "0"},
            ["SERVE_WORKERS (--workers)", "SERVE_MAX_HEADERS"],
        ),
    ],
)
def test_invalid_setting_is_one_line_and_exit_2(
    args: list[str], settings: dict[str, str], reasons: list[str]
) -> None:
    assert_one_line_error(run_cli(*args, **settings), *reasons)


def test_connection_cap_above_the_open_file_limit_is_one_line_and_exit_2() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no open-file limit to exceed")
    result = run_cli(max_connections=str(soft))
    assert_one_line_error(result, f"SERVE_MAX_CONNECTIONS={soft}", f"open-file limit ({soft})")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_one_line_and_exit_2(device: str) -> None:
    result = run_cli("--device", device)
    assert_one_line_error(result, f"device '{device}'", "CUDA is not available on this machine")


def test_cuda_device_number_out_of_range_is_one_line_and_exit_2() -> None:
    result = run_cli("--device", "cuda:99")
    if torch.cuda.is_available():
        reason = f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    else:
        reason = "CUDA is not available on this machine"
    assert_one_line_error(result, "device 'cuda:99'", reason)


def test_cuda_device_that_is_not_a_number_is_one_line_and_exit_2() -> None:
    assert_one_line_error(run_cli("--device", "cuda:x"), "cuda:N needs a device number")
