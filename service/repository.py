"""The served repository: every `<name>/<version>/` verified, loaded by the runtime, warmed up,
and given a batcher of its own.

The layout and file formats are `modelrepo`'s (Triton's layout). A version that fails to load
is kept with its reason and reported as not ready; the rest serve.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import ValidationError

from modelrepo import layout
from modelrepo.card import ModelCard
from modelrepo.config import BatchingConfig, ConfigError, batching_of, read_config
from modelrepo.layout import CARD_FILE, CONFIG_FILE, MODEL_FILE, sha256_of
from modelrepo.torchscript import resolve_device
from service import metrics
from service.batching import DynamicBatcher
from service.errors import ModelNotFound, ModelNotReady
from service.runtime import TorchScriptRuntime
from service.settings import Settings

log = logging.getLogger(__name__)

READY, UNAVAILABLE = "READY", "UNAVAILABLE"


class LoadError(Exception):
    """Why a version could not be loaded (shown to clients in the model's metadata)."""


class LoadedModel:
    """One version, loaded: its card, its runtime and, once it serves, its batcher."""

    def __init__(
        self, card: ModelCard, runtime: TorchScriptRuntime, batching: BatchingConfig
    ) -> None:
        self.card = card
        self.runtime = runtime
        self.batching = batching
        self.batcher: DynamicBatcher | None = None

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> int:
        return self.card.version


@dataclass
class ModelEntry:
    """Every version of one model name: loaded ones and failed ones with their reasons."""

    name: str
    loaded: dict[int, LoadedModel] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def versions(self) -> list[int]:
        return sorted({*self.loaded, *self.failed})

    @property
    def default_version(self) -> int | None:
        """The highest version that loaded."""
        return max(self.loaded, default=None)

    @property
    def ready(self) -> bool:
        return bool(self.loaded)

    def reason(self) -> str:
        return "; ".join(f"version {v}: {why}" for v, why in sorted(self.failed.items()))


def load_version(
    version_dir: Path, name: str, device: torch.device, batching: BatchingConfig, warmup: bool
) -> LoadedModel:
    """Validate the card, verify the hash *before* unpickling anything, load, warm up."""
    try:
        card = ModelCard.model_validate_json((version_dir / CARD_FILE).read_text())
    except FileNotFoundError:
        raise LoadError(f"{CARD_FILE} is missing") from None
    except ValidationError as error:
        raise LoadError(f"{CARD_FILE} is invalid: {error.errors()[0]['msg']}") from None
    if card.name != name or str(card.version) != version_dir.name:
        raise LoadError(
            f"{CARD_FILE} says {card.name}/{card.version}, but it lies in {name}/{version_dir.name}"
        )
    model_path = version_dir / MODEL_FILE
    if not model_path.is_file():
        raise LoadError(f"{MODEL_FILE} is missing")
    if (digest := sha256_of(model_path)) != card.sha256:
        raise LoadError(f"sha256 of {MODEL_FILE} is {digest}, the card says {card.sha256}")
    features = card.input.features
    try:
        runtime = TorchScriptRuntime.load(model_path, device, batching.max_batch_size, features)
    except Exception as error:  # corrupt archive: torch raises RuntimeError and friends
        raise LoadError(f"{MODEL_FILE} cannot be loaded: {str(error).splitlines()[0]}") from None
    if warmup:
        try:
            runtime.warm_up()
        except Exception as error:
            raise LoadError(f"warm-up forward pass failed: {str(error).splitlines()[-1]}") from None
    return LoadedModel(card, runtime, batching)


@dataclass(frozen=True)
class IndexEntry:
    """One row of the repository index (Triton's model repository extension)."""

    name: str
    version: str
    state: str
    reason: str


class ModelRegistry:
    """All models of a repository root, loaded onto one device, each version with a batcher.

    Models can be (re)loaded and unloaded while serving (`load`, `unload`, `poll`): a new or
    changed version is verified and warmed up before it takes traffic, a version that fails
    keeps the one already serving, and an unloaded version finishes what it has queued.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.models
        try:
            self.device = resolve_device(settings.device)
        except ValueError as error:
            raise LoadError(str(error)) from None
        self.entries: dict[str, ModelEntry] = {}
        self.unloaded: set[str] = set()
        self.loaded = asyncio.Event()
        self._changes = asyncio.Lock()
        self._fingerprints: dict[str, tuple] = {}

    @property
    def ready(self) -> bool:
        return self.loaded.is_set()

    # loading -----------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            log.error("model repository %s does not exist", self.root)
            return []
        return layout.model_names(self.root)

    def _load_model(self, model_dir: Path, serving: ModelEntry | None = None) -> ModelEntry:
        """Load every version of one model (blocking). Versions of `serving` whose files did
        not change are reused; a version that fails to load keeps its serving instance."""
        entry = ModelEntry(model_dir.name)
        versions = layout.version_dirs(model_dir)
        try:
            batching = batching_of(
                read_config(model_dir / CONFIG_FILE),
                self.settings.max_batch_size,
                self.settings.max_queue_delay_ms / 1e3,
            )
        except (ConfigError, OSError, UnicodeDecodeError) as error:
            for version_dir in versions:
                entry.failed[int(version_dir.name)] = f"{CONFIG_FILE} is invalid: {error}"
            if serving is not None:
                entry.loaded.update(serving.loaded)
            return entry
        for version_dir in versions:
            version = int(version_dir.name)
            current = serving.loaded.get(version) if serving is not None else None
            if current is not None and unchanged(current, version_dir, batching):
                entry.loaded[version] = current
                continue
            try:
                entry.loaded[version] = load_version(
                    version_dir, entry.name, self.device, batching, self.settings.warmup
                )
            except LoadError as error:
                entry.failed[version] = str(error)
                log.error("model %s version %d not loaded: %s", entry.name, version, error)
                if current is not None:
                    entry.loaded[version] = current  # keep serving what works
        return entry

    def scan(self) -> dict[str, ModelEntry]:
        """Load every model under the root (blocking: call it off the event loop)."""
        return {name: self._load_model(self.root / name) for name in self.model_names()}

    async def start(self) -> None:
        """Load the repository in a thread, then start one batcher per loaded version."""
        async with self._changes:
            entries = await asyncio.to_thread(self.scan)
            for entry in entries.values():
                self._activate(entry)
            self.entries = entries
            for name in entries:
                await self._remember_files(name)
        self.loaded.set()
        log.info(
            "repository loaded",
            extra={
                "fields": {
                    "repository": str(self.root),
                    "device": str(self.device),
                    "models": {name: sorted(e.loaded) for name, e in entries.items()},
                    "failed": {name: sorted(e.failed) for name, e in entries.items() if e.failed},
                }
            },
        )

    def _activate(self, entry: ModelEntry) -> None:
        """Start a batcher for every version of `entry` that has none yet."""
        for model in entry.loaded.values():
            if model.batcher is not None:
                continue
            model.batcher = DynamicBatcher(
                model.runtime.run_batch,
                name=f"{model.name}/{model.version}",
                max_batch_size=model.batching.max_batch_size,
                max_queue_delay_s=model.batching.max_queue_delay_s,
                max_queue_size=self.settings.max_queue_size,
                observer=metrics.for_version(model.name, model.version),
            )
            model.batcher.start()
            metrics.set_ready(model.name, model.version, True)
            log.info(
                "model %s version %d ready",
                model.name,
                model.version,
                extra={
                    "fields": {
                        "model": model.name,
                        "version": model.version,
                        "device": str(self.device),
                        "max_batch_size": model.batching.max_batch_size,
                        "max_queue_delay_ms": model.batching.max_queue_delay_s * 1e3,
                        "max_queue_size": self.settings.max_queue_size,
                    }
                },
            )
        for version in entry.failed:
            if version not in entry.loaded:
                metrics.set_ready(entry.name, version, False)

    # the repository API ------------------------------------------------------------------

    async def load(self, name: str) -> ModelEntry:
        """(Re)load one model from disk; new traffic moves to it once it is warm."""
        model_dir = self.root / name
        self._require_loaded()
        if name.startswith(".") or "/" in name or not model_dir.is_dir():
            raise ModelNotFound(f"no model {name!r} in the repository {self.root}")
        async with self._changes:
            serving = self.entries.get(name)
            entry = await asyncio.to_thread(self._load_model, model_dir, serving)
            self._activate(entry)
            self.entries[name] = entry
            self.unloaded.discard(name)
            await self._remember_files(name)
            if serving is not None:
                retired = [m for v, m in serving.loaded.items() if entry.loaded.get(v) is not m]
                await self._retire(retired)
        return entry

    async def unload(self, name: str) -> None:
        """Stop serving every version of `name`; queued requests still get their answers."""
        self._require_loaded()
        async with self._changes:
            entry = self.entries.pop(name, None)
            if entry is None:
                if name in self.unloaded or name in self.model_names():
                    return  # unloading an unloaded model is a no-op, as in Triton
                raise ModelNotFound(f"no model {name!r} in the repository {self.root}")
            self.unloaded.add(name)
            await self._remember_files(name)
            await self._retire(list(entry.loaded.values()))
            log.info("model %s unloaded", name, extra={"fields": {"model": name}})

    async def _retire(self, models: list[LoadedModel]) -> None:
        for model in models:
            metrics.set_ready(model.name, model.version, False)
            if model.batcher is not None:
                await model.batcher.stop(self.settings.drain_timeout_s)

    def index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every model version in the repository with its state, as Triton's index lists it."""
        rows: list[IndexEntry] = []
        for name in sorted({*self.model_names(), *self.entries}):
            entry = self.entries.get(name)
            if entry is None:
                reason = "unloaded" if name in self.unloaded else "not loaded"
                rows.extend(
                    IndexEntry(name, str(v), UNAVAILABLE, reason)
                    for v in layout.versions(self.root / name)
                )
                continue
            for version in entry.versions:
                if version in entry.loaded:
                    rows.append(IndexEntry(name, str(version), READY, ""))
                else:
                    rows.append(IndexEntry(name, str(version), UNAVAILABLE, entry.failed[version]))
        return [row for row in rows if row.state == READY] if ready_only else rows

    # polling -----------------------------------------------------------------------------

    async def _remember_files(self, name: str) -> None:
        """Record the model's files as seen now (a file walk: off the event loop)."""
        self._fingerprints[name] = await asyncio.to_thread(self.fingerprint, name)

    def _require_loaded(self) -> None:
        if not self.loaded.is_set():
            raise ModelNotReady("models are still loading; retry shortly")

    def fingerprint(self, name: str) -> tuple:
        """What changes when a model's files change: names, sizes and mtimes under its dir."""
        model_dir = self.root / name
        if not model_dir.is_dir():
            return ()
        return tuple(
            sorted(
                (str(path.relative_to(model_dir)), stat.st_size, stat.st_mtime_ns)
                for path in model_dir.rglob("*")
                if path.is_file() and (stat := path.stat())
            )
        )

    async def poll(self) -> None:
        """Load models that appeared or changed on disk; unload those that disappeared."""
        names = await asyncio.to_thread(self.model_names)
        for name in names:
            fingerprint = await asyncio.to_thread(self.fingerprint, name)
            if fingerprint != self._fingerprints.get(name):
                log.info(
                    "model %s changed on disk; loading", name, extra={"fields": {"model": name}}
                )
                await self.load(name)
        for name in set(self.entries) - set(names):
            log.info("model %s left the repository; unloading", name)
            await self.unload(name)
            self.unloaded.discard(name)

    async def poll_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll()
            except Exception:  # a bad file on disk must not stop the polling
                log.exception("repository poll failed")

    # serving -----------------------------------------------------------------------------

    async def stop(self) -> None:
        for entry in self.entries.values():
            for model in entry.loaded.values():
                if model.batcher is not None:
                    await model.batcher.stop(self.settings.drain_timeout_s)

    def entry(self, name: str) -> ModelEntry:
        self._require_loaded()
        try:
            return self.entries[name]
        except KeyError:
            if name in self.unloaded:
                raise ModelNotFound(
                    f"model {name!r} is unloaded; POST /v2/repository/models/{name}/load"
                ) from None
            known = ", ".join(sorted(self.entries)) or "none"
            raise ModelNotFound(f"unknown model {name!r}; models: {known}") from None

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The requested version (default: the highest loaded one), ready to serve."""
        entry = self.entry(name)
        if version is None:
            if entry.default_version is None:
                raise ModelNotReady(f"model {name!r} is not ready: {entry.reason()}")
            return entry.loaded[entry.default_version]
        if not version.isdigit() or int(version) not in entry.versions:
            listed = ", ".join(str(v) for v in entry.versions)
            raise ModelNotFound(f"model {name!r} has no version {version!r}; versions: {listed}")
        if int(version) not in entry.loaded:
            raise ModelNotReady(
                f"model {name!r} version {version} is not ready: {entry.failed[int(version)]}"
            )
        return entry.loaded[int(version)]


def unchanged(model: LoadedModel, version_dir: Path, batching: BatchingConfig) -> bool:
    """Same card (hence the same model hash) and the same batching: no reload needed."""
    try:
        card = ModelCard.model_validate_json((version_dir / CARD_FILE).read_text())
    except (OSError, ValidationError):
        return False
    return (
        card == model.card
        and batching == model.batching
        and sha256_of(version_dir / MODEL_FILE) == model.card.sha256
    )
