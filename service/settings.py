"""Every setting of the service, in one place: `SERVE_*` environment variables or CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelrepo.config import MAX_BATCH_SIZE

MiB = 1 << 20


class Settings(BaseSettings):
    """Defaults were chosen by measurement on a 2-core machine; see README's Configuration."""

    model_config = SettingsConfigDict(env_prefix="SERVE_", extra="ignore")

    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port")
    grpc_port: int = Field(8001, ge=0, le=65535, description="gRPC port (0: no gRPC)")
    workers: int = Field(1, ge=1, description="uvicorn worker processes")
    models: Path = Field(Path("models"), description="model repository root")
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda or cuda:N")
    runtime: Literal["auto", "torchscript", "onnxruntime"] = Field(
        "auto",
        description="auto: ONNX Runtime on CPU where a version has model.onnx, else TorchScript",
    )
    torch_threads: int = Field(
        1, ge=1, description="intra-op threads per forward pass (TorchScript and ONNX Runtime)"
    )

    inline_max_us: float = Field(
        200.0,
        ge=0,
        description="a lone request on an idle ONNX Runtime model runs on the event loop when "
        "its forward pass measured at most this long at load (0: never)",
    )

    max_batch_size: int = Field(
        64,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="rows per forward pass, where config.pbtxt does not say",
    )
    max_queue_delay_ms: float = Field(
        0.0, ge=0, description="longest wait of the oldest queued row, where config.pbtxt is silent"
    )
    max_queue_size: int = Field(4096, ge=1, description="queued rows per model version before 503")
    request_timeout_s: float = Field(30.0, gt=0, description="queue + inference time before 504")
    max_rows_per_request: int = Field(4096, ge=1, description="rows in one request before 413")
    max_body_bytes: int = Field(16 * MiB, ge=1024, description="request body size before 413")
    max_files_per_request: int = Field(64, ge=1, description="files in one image upload before 413")
    max_image_pixels: int = Field(
        50_000_000,
        ge=1,
        description="declared width x height of one upload before 413 (phones: 12-50 MP)",
    )
    max_request_pixels: int = Field(
        100_000_000, ge=1, description="declared pixels of all a request's uploads before 413"
    )
    image_workers: int = Field(2, ge=1, description="threads decoding and preprocessing uploads")
    not_a_digit_below: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="an image prediction whose digit_score (its top probability) is below "
        "this is flagged not_a_digit (README, Digit images: calibration)",
    )
    api_key: SecretStr | None = Field(
        None, description="require this key on /v1/models*, /v2/models* and /v2/repository*"
    )
    metrics_require_key: bool = Field(False, description="require the API key on /metrics too")
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS (none: CORS off)"
    )
    poll_interval_s: float = Field(
        0.0, ge=0, description="rescan the repository this often (0: never; see the repository API)"
    )
    drain_delay_s: float = Field(
        5.0, ge=0, description="after SIGTERM: readiness 503, listener open, for this long"
    )
    drain_timeout_s: float = Field(
        30.0, gt=0, description="then: time to finish accepted requests (>= request timeout)"
    )
    warmup: bool = Field(True, description="run forward passes at several batch sizes on load")
    trusted_hashes: Path | None = Field(
        None,
        description="a file of sha256 digests (sha256sum's format): only model files listed "
        "there load (none: any whose card matches)",
    )
    max_staging_bytes: int = Field(
        256 * MiB,
        ge=64 * 1024,
        description="staging memory of one version (max_batch_size x features)",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    max_header_bytes: int = Field(
        65536, ge=1024, description="request line + headers, counted while read, before 431"
    )
    max_headers: int = Field(100, ge=1, description="header fields in one request before 431")
    header_timeout_s: float = Field(
        10.0, gt=0, description="from connect or the last answer to complete headers, before 408"
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="longest gap between two reads of a request body before 408"
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        description="open connections per process before 503 (unset: open-file limit - 256)",
    )

    @model_validator(mode="after")
    def _drain_outlasts_requests(self) -> Settings:
        if self.drain_timeout_s < self.request_timeout_s:
            raise ValueError(
                "drain_timeout_s must be >= request_timeout_s, or accepted requests may be cut"
            )
        return self

    @field_validator("api_key")
    @classmethod
    def _empty_key_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        kind = value.split(":", 1)[0]
        if kind not in ("auto", "cpu", "cuda"):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return value
