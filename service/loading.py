"""One version from disk to a model ready to serve: card, runtime, trust, hash, bounds, warm-up.

Nothing is unpickled or parsed before the checks that need neither have passed: the card is
JSON, the runtime and so the model file are chosen (`SERVE_RUNTIME`: ONNX Runtime on the CPU
where the version has `model.onnx`, TorchScript otherwise), that file's sha256 is compared
with the operator's trusted list (when there is one) and with the card, and the staging memory
the version would take is bounded. A version without a card is served as Triton serves it,
from `config.pbtxt` (`modelrepo.triton`: tensors, labels, the model file and its runtime);
the trusted list still applies to it, the card's digest cannot. Any failure, expected or not,
becomes a `LoadError` whose message is the reason clients see for the version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ValidationError

from modelrepo.card import ModelCard, ModelSpec
from modelrepo.config import BatchingConfig, ModelConfig
from modelrepo.layout import CARD_FILE, CONFIG_FILE, MODEL_FILE, ONNX_FILE, sha256_of
from modelrepo.triton import Format, TritonModel, UnsupportedModel, triton_model
from service.batching import DynamicBatcher, summarize
from service.errors import ModelNotReady
from service.in_flight import REQUESTS
from service.runtime import (
    Runtime,
    RuntimeName,
    RuntimeUnavailable,
    inline_rows,
    installed,
    open_runtime,
    warm_up,
)

RuntimeChoice = Literal["auto", "torchscript", "onnxruntime"]
FILES: dict[RuntimeName, str] = {"torchscript": MODEL_FILE, "onnxruntime": ONNX_FILE}

FLOAT32_BYTES = 4


class LoadError(Exception):
    """Why a version could not be loaded (shown to clients in the model's metadata)."""


class BackendMissing(LoadError):
    """The version needs a runtime this install leaves out (TorchScript in the torch-free
    image): expected there, so logged as a warning, not an error."""


@dataclass(frozen=True)
class LoadPolicy:
    """How every version is loaded: onto which device, by which runtime, with how many threads,
    warmed up or not, which model files are trusted (None: any whose card matches), and how
    much staging memory one may take."""

    device: str
    warmup: bool
    max_staging_bytes: int
    runtime: RuntimeChoice = "auto"
    threads: int = 1
    inline_max_s: float = 0.0  # a lone request's forward pass may run on the event loop
    trusted: frozenset[str] | None = None
    trust_problem: str | None = None  # the trusted list itself cannot be used


class LoadedModel:
    """One version, loaded: its card (for a model without one, the spec its config.pbtxt
    gives), its runtime (with the file it runs and that file's sha256) and, once it serves,
    its batcher."""

    def __init__(
        self,
        card: ModelSpec,
        runtime: Runtime,
        batching: BatchingConfig,
        digest: str,
        inline_rows: int,
        file: str,
    ) -> None:
        self.card = card
        self.runtime = runtime
        self.batching = batching
        self.file = file  # the file it runs, whose sha256 is `digest`
        self.digest = digest
        self.inline_rows = inline_rows  # rows a lone request may run on the event loop
        self.batcher: DynamicBatcher | None = None

    @property
    def has_card(self) -> bool:
        """False for a Triton model served from its config.pbtxt alone."""
        return isinstance(self.card, ModelCard)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> int:
        return self.card.version

    async def infer(self, rows: np.ndarray, timeout_s: float) -> np.ndarray:
        """`rows` through this version's batcher (503 once it stopped serving)."""
        if self.batcher is None:
            raise ModelNotReady(f"model {self.name!r} version {self.version} is not serving")
        return await self.batcher.infer(rows, timeout_s, alone=REQUESTS.alone())

    def infer_now(self, rows: np.ndarray) -> np.ndarray | None:
        """The outputs of `rows` when they run at once on the event loop (a request alone on
        an idle version: `DynamicBatcher.infer_now`); None when they must be awaited."""
        if self.batcher is None:
            return None
        return self.batcher.infer_now(rows, REQUESTS.alone())

    def config(self) -> ModelConfig:
        """The configuration this version is served with, as Triton's ModelConfig: its
        tensors from the card, its batching as honoured (config.pbtxt, else the settings)."""
        return ModelConfig(
            name=self.name,
            platform=self.runtime.platform,
            max_batch_size=self.batching.max_batch_size,
            input=[
                {
                    "name": self.card.input.name,
                    "data_type": f"TYPE_{self.card.input.datatype}",
                    "dims": [self.card.input.features],
                }
            ],
            output=[
                {
                    "name": self.card.output.name,
                    "data_type": f"TYPE_{self.card.output.datatype}",
                    "dims": [self.card.output.width],
                }
            ],
            dynamic_batching={
                "max_queue_delay_microseconds": round(self.batching.max_queue_delay_s * 1e6)
            },
        )


def load_version(
    version_dir: Path,
    name: str,
    batching: BatchingConfig,
    policy: LoadPolicy,
    config: ModelConfig | None = None,
) -> LoadedModel:
    """The version in `version_dir`, checked, loaded and warmed up; LoadError says why not.
    Without a card, it is served from `config` (the model's config.pbtxt), where there is one."""
    try:
        if config is not None and not (version_dir / CARD_FILE).exists():
            return _load_without_card(version_dir, batching, policy, config)
        return _load_version(version_dir, name, batching, policy)
    except LoadError:
        raise
    except Exception as error:  # whatever else a bad file makes a library raise
        raise LoadError(f"unexpected {type(error).__name__}: {summarize(error)}") from None


def _load_version(
    version_dir: Path, name: str, batching: BatchingConfig, policy: LoadPolicy
) -> LoadedModel:
    card = read_card(version_dir)
    if card.name != name or str(card.version) != version_dir.name:
        raise LoadError(
            f"{CARD_FILE} says {card.name}/{card.version}, but it lies in {name}/{version_dir.name}"
        )
    runtime_name = choose_runtime(card, policy)
    file_name = FILES[runtime_name]
    model_path = version_dir / file_name
    if not model_path.is_file():
        raise LoadError(f"{file_name} is missing")
    digest = sha256_of(model_path)
    check_trusted(digest, policy, file_name)
    if digest != card.digest_of(file_name):
        raise LoadError(
            f"sha256 of {file_name} is {digest}, the card says {card.digest_of(file_name)}"
        )
    return _open(runtime_name, model_path, card, digest, batching, policy)


def _load_without_card(
    version_dir: Path, batching: BatchingConfig, policy: LoadPolicy, config: ModelConfig
) -> LoadedModel:
    """A Triton version as Triton's backend would serve it: everything from config.pbtxt.
    Without a card there is no digest to compare with; the trusted list still applies."""
    described = describe_without_card(version_dir, config)
    runtime_name = runtime_for_format(described.format, policy)
    model_path = version_dir / described.file_name
    if not model_path.is_file():
        raise LoadError(f"{described.file_name} is missing (and there is no {CARD_FILE})")
    digest = sha256_of(model_path)
    check_trusted(digest, policy, described.file_name)
    model = _open(runtime_name, model_path, described.spec, digest, batching, policy)
    check_output_width(model)
    return model


def check_output_width(model: LoadedModel) -> None:
    """One row through the model answers the outputs config.pbtxt declares (Triton would
    fail each request; here the version does not load)."""
    row = np.zeros((1, model.card.input.features), dtype=np.float32)
    try:
        shape = tuple(model.runtime.run_batch([row]).shape)
    except Exception as error:
        raise LoadError(f"a forward pass of one row failed: {summarize(error)}") from None
    if shape != (1, model.card.output.width):
        raise LoadError(
            f"{model.file} answers shape {list(shape)} for one row; {CONFIG_FILE} declares "
            f"{model.card.output.name} with {model.card.output.width} outputs"
        )


def describe_without_card(version_dir: Path, config: ModelConfig) -> TritonModel:
    try:
        return triton_model(config, version_dir.parent, int(version_dir.name))
    except UnsupportedModel as error:
        raise LoadError(f"no {CARD_FILE}, and {CONFIG_FILE} cannot serve it: {error}") from None


def runtime_for_format(model_format: Format, policy: LoadPolicy) -> RuntimeName:
    """The runtime config.pbtxt's platform asks for, if `SERVE_RUNTIME` and the device allow."""
    if policy.runtime not in ("auto", model_format):
        raise LoadError(
            f"SERVE_RUNTIME={policy.runtime}, but {CONFIG_FILE}'s platform is served by "
            f"{model_format}"
        )
    if model_format == "onnxruntime" and policy.device != "cpu":
        raise LoadError(
            f"ONNX Runtime serves on the CPU here, not {policy.device}: this model's "
            f"{CONFIG_FILE} names an ONNX model"
        )
    return model_format


def _open(
    runtime_name: RuntimeName,
    model_path: Path,
    card: ModelSpec,
    digest: str,
    batching: BatchingConfig,
    policy: LoadPolicy,
) -> LoadedModel:
    """The checked file opened by its runtime, warmed up, with its inline rows measured."""
    check_staging(card, batching, policy)
    runtime = open_checked(runtime_name, model_path, card, batching, policy)
    try:
        if policy.warmup:
            warm_up(runtime)
        inline = inline_rows(runtime, policy.inline_max_s) if batching.max_queue_delay_s == 0 else 0
    except Exception as error:
        raise LoadError(f"warm-up forward pass failed: {summarize(error)}") from None
    return LoadedModel(card, runtime, batching, digest, inline, model_path.name)


def choose_runtime(card: ModelCard, policy: LoadPolicy) -> RuntimeName:
    """`SERVE_RUNTIME` for this version: `auto` is ONNX Runtime on the CPU where the card lists
    `model.onnx` and onnxruntime is installed, TorchScript otherwise (CUDA, older versions)."""
    if policy.runtime == "torchscript":
        return "torchscript"
    has_onnx = card.digest_of(ONNX_FILE) is not None
    if policy.runtime == "onnxruntime":
        if policy.device != "cpu":
            raise LoadError(
                f"ONNX Runtime serves on the CPU here, not {policy.device}: "
                "use SERVE_RUNTIME=torchscript (or auto) for CUDA"
            )
        if not has_onnx:
            raise LoadError(f"SERVE_RUNTIME=onnxruntime, but the card lists no {ONNX_FILE}")
        return "onnxruntime"
    if has_onnx and policy.device == "cpu" and installed("onnxruntime"):
        return "onnxruntime"
    return "torchscript"


def open_checked(
    name: RuntimeName, path: Path, card: ModelSpec, batching: BatchingConfig, policy: LoadPolicy
) -> Runtime:
    """The runtime on `path`, or LoadError with the first line of what the runtime said,
    without the directories it names (ONNX Runtime quotes the file's absolute path)."""
    try:
        return open_runtime(
            name, path, policy.device, batching.max_batch_size, card.input.features, policy.threads
        )
    except RuntimeUnavailable as error:
        raise BackendMissing(str(error)) from None
    except Exception as error:  # corrupt file: torch raises RuntimeError, ONNX Runtime its own
        reason = first_line(error)
        for directory in {str(path.parent.resolve()), str(path.parent)}:
            reason = reason.replace(f"{directory}/", "")
        raise LoadError(f"{path.name} cannot be loaded: {reason}") from None


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_card(version_dir: Path) -> ModelCard:
    path = version_dir / CARD_FILE
    try:
        return ModelCard.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise LoadError(f"{CARD_FILE} is missing") from None
    except IsADirectoryError:
        raise LoadError(f"{CARD_FILE} is a directory, not a file") from None
    except OSError as error:
        raise LoadError(f"{CARD_FILE} cannot be read: {error.strerror}") from None
    except ValidationError as error:
        raise LoadError(f"{CARD_FILE} is invalid: {error.errors()[0]['msg']}") from None


def check_trusted(digest: str, policy: LoadPolicy, file_name: str = MODEL_FILE) -> None:
    """With a trusted list, only listed model files load: the card beside a model is written
    by whoever wrote the model, the list by the operator."""
    if policy.trust_problem is not None:
        raise LoadError(policy.trust_problem)
    if policy.trusted is not None and digest not in policy.trusted:
        raise LoadError(
            f"sha256 of {file_name} ({digest}) is not in the trusted list (SERVE_TRUSTED_HASHES)"
        )


def check_staging(card: ModelSpec, batching: BatchingConfig, policy: LoadPolicy) -> None:
    """The staging buffer (max_batch_size x features float32) fits the limit, before any of it
    is allocated."""
    needed = batching.max_batch_size * card.input.features * FLOAT32_BYTES
    if needed > policy.max_staging_bytes:
        raise LoadError(
            f"max_batch_size {batching.max_batch_size} x {card.input.features} features needs "
            f"{needed} bytes of staging, above SERVE_MAX_STAGING_BYTES ({policy.max_staging_bytes})"
        )


def read_trusted(path: Path) -> frozenset[str]:
    """The sha256 digests of a trusted list: one per line, as `sha256sum` writes them (a digest,
    then anything); blank lines and `#` comments are skipped."""
    digests = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        digest = text.split()[0].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"line {number} is not a sha256 digest")
        digests.add(digest)
    return frozenset(digests)


def unchanged(
    model: LoadedModel,
    version_dir: Path,
    batching: BatchingConfig,
    config: ModelConfig | None = None,
) -> bool:
    """Same card (hence the same model hash), or still none and the same spec and file from
    `config`, and the same batching: no reload needed."""
    card: ModelSpec
    file_name = model.file
    try:
        if model.has_card or config is None:
            card = ModelCard.model_validate_json((version_dir / CARD_FILE).read_bytes())
        elif (version_dir / CARD_FILE).exists():
            return False  # a card appeared (adopted)
        else:
            described = triton_model(config, version_dir.parent, model.version)
            card, file_name = described.spec, described.file_name
        digest = sha256_of(version_dir / file_name)
    except (OSError, ValidationError, UnsupportedModel):
        return False
    return (
        card == model.card
        and file_name == model.file
        and batching == model.batching
        and digest == model.digest
    )
