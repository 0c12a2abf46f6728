"""The served repository: every `<name>/<version>/` that `version_policy` selects verified,
loaded by the runtime, warmed up, and given a batcher of its own.

The layout and file formats are `modelrepo`'s (Triton's layout). A version that fails to load
is kept with its reason and reported as not ready; the rest serve.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from modelrepo import layout
from modelrepo.config import BatchingConfig, ModelConfig, batching_of, read_config
from modelrepo.devices import resolve_device
from modelrepo.layout import CONFIG_FILE
from modelrepo.triton import served_versions
from service import metrics, statistics
from service.batching import DynamicBatcher, Observers, summarize
from service.errors import ModelLoadFailed, ModelNotFound, ModelNotReady
from service.loading import (
    BackendMissing,
    LoadedModel,
    LoadError,
    LoadPolicy,
    check_trusted,
    load_version,
    read_trusted,
    unchanged,
)
from service.settings import Settings

log = logging.getLogger(__name__)

READY, UNAVAILABLE = "READY", "UNAVAILABLE"


@dataclass
class ModelEntry:
    """Every version of one model name: loaded ones and failed ones with their reasons."""

    name: str
    loaded: dict[int, LoadedModel] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    problem: str = ""  # the model's directory cannot be read, or its policy selects no version

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

    def raise_if_failed(self) -> None:
        """ModelLoadFailed (400) naming every version that did not load, and what serves."""
        if self.failed:
            serving = ", ".join(str(v) for v in sorted(self.loaded)) or "none"
            raise ModelLoadFailed(
                f"failed to load {self.name!r}: {self.reason()}; versions serving: {serving}"
            )

    def reason(self) -> str:
        reasons = [f"version {v}: {why}" for v, why in sorted(self.failed.items())]
        return "; ".join([self.problem] if self.problem else reasons)


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
        self.scan_problem: str | None = None  # the repository itself could not be read
        self._changes = asyncio.Lock()
        self._fingerprints: dict[str, tuple] = {}

    @property
    def ready(self) -> bool:
        return self.loaded.is_set()

    # loading -----------------------------------------------------------------------------

    def on_disk(self, name: str) -> bool:
        """A model directory of this name is in the repository (a name that cannot be one,
        such as `..`, a path or one too long for the file system, is not)."""
        if not name or name.startswith(".") or "/" in name or "\0" in name or len(name) > 255:
            return False
        try:
            return (self.root / name).is_dir()
        except OSError:
            return False

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            log.error("model repository %s does not exist", self.root)
            return []
        return layout.model_names(self.root)

    def policy(self) -> LoadPolicy:
        """How versions load now (the trusted list is read afresh: an operator may change it)."""
        policy = LoadPolicy(
            self.device,
            self.settings.warmup,
            self.settings.max_staging_bytes,
            runtime=self.settings.runtime,
            threads=self.settings.torch_threads,
            inline_max_s=self.settings.inline_max_us / 1e6,
        )
        path = self.settings.trusted_hashes
        if path is None:
            return policy
        try:
            return replace(policy, trusted=read_trusted(path))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            why = getattr(error, "strerror", None) or str(error)
            problem = f"the trusted list (SERVE_TRUSTED_HASHES) cannot be used: {why}"
            log.error(problem)
            return replace(policy, trusted=frozenset(), trust_problem=problem)

    def _load_model(self, model_dir: Path, serving: ModelEntry | None = None) -> ModelEntry:
        """Load every version of one model that its version policy selects (blocking).
        Versions of `serving` whose files did not change are reused; a version that fails to
        load keeps its serving instance (unless it is no longer trusted)."""
        entry = ModelEntry(model_dir.name)
        try:
            versions = layout.version_dirs(model_dir)
        except OSError as error:
            entry.problem = f"the model's directory cannot be read: {error.strerror}"
            log.error("model %s not loaded: %s", entry.name, entry.problem)
            return entry
        try:
            config = read_config(model_dir / CONFIG_FILE)
            batching = batching_of(
                config, self.settings.max_batch_size, self.settings.max_queue_delay_ms / 1e3
            )
            selected = served_versions(config, [int(d.name) for d in versions])
        except Exception as error:  # unreadable, not Triton's ModelConfig, or out of bounds
            for version_dir in versions:
                entry.failed[int(version_dir.name)] = f"{CONFIG_FILE} is invalid: {error}"
            log.error("model %s not loaded: %s is invalid: %s", entry.name, CONFIG_FILE, error)
            if serving is not None:
                entry.loaded.update(serving.loaded)
            return entry
        if versions and not selected:
            entry.problem = f"{CONFIG_FILE}'s version_policy selects none of the versions on disk"
            log.error("model %s not loaded: %s", entry.name, entry.problem)
        policy = self.policy()
        for version_dir in versions:
            if int(version_dir.name) in selected:
                self._load_one(entry, version_dir, batching, policy, serving, config)
        return entry

    def _load_one(
        self,
        entry: ModelEntry,
        version_dir: Path,
        batching: BatchingConfig,
        policy: LoadPolicy,
        serving: ModelEntry | None,
        config: ModelConfig | None,
    ) -> None:
        version = int(version_dir.name)
        current = serving.loaded.get(version) if serving is not None else None
        if current is not None and unchanged(current, version_dir, batching, config):
            try:
                check_trusted(current.digest, policy, current.file)  # the operator may withdraw it
            except LoadError as error:
                self._failed(entry, version, error)
                return
            entry.loaded[version] = current
            return
        try:
            entry.loaded[version] = load_version(version_dir, entry.name, batching, policy, config)
        except LoadError as error:
            self._failed(entry, version, error)
            if current is not None:
                entry.loaded[version] = current  # keep serving what works

    @staticmethod
    def _failed(entry: ModelEntry, version: int, error: LoadError) -> None:
        entry.failed[version] = str(error)
        log.log(
            logging.WARNING if isinstance(error, BackendMissing) else logging.ERROR,
            "model %s version %d not loaded: %s",
            entry.name,
            version,
            error,
            extra={"fields": {"model": entry.name, "version": version, "reason": str(error)}},
        )

    def scan(self) -> dict[str, ModelEntry]:
        """Load every model under the root (blocking: call it off the event loop)."""
        return {name: self._load_model(self.root / name) for name in self.model_names()}

    def scan_safely(self) -> dict[str, ModelEntry]:
        """`scan`, or nothing with `scan_problem` saying why the repository cannot be read."""
        try:
            return self.scan()
        except Exception as error:
            why = error.strerror if isinstance(error, OSError) and error.strerror else None
            self.scan_problem = f"the model repository cannot be read: {why or summarize(error)}"
            log.error(self.scan_problem)
            return {}

    async def start(self) -> None:
        """Load the repository in a thread, then start one batcher per loaded version."""
        async with self._changes:
            entries = await asyncio.to_thread(self.scan_safely)
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
                    "device": self.device,
                    "models": {name: sorted(e.loaded) for name, e in entries.items()},
                    "runtimes": {
                        f"{name}/{version}": f"{model.runtime.name} on {model.runtime.device}"
                        for name, e in entries.items()
                        for version, model in sorted(e.loaded.items())
                    },
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
                inline_max_rows=model.inline_rows,
                observer=Observers(
                    metrics.for_version(model.name, model.version),
                    statistics.for_version(model.name, model.version),
                ),
            )
            model.batcher.start()
            metrics.set_ready(model.name, model.version, True)
            log.info(
                "model %s version %d ready (%s on %s)",
                model.name,
                model.version,
                model.runtime.name,
                model.runtime.device,
                extra={
                    "fields": {
                        "model": model.name,
                        "version": model.version,
                        "runtime": model.runtime.name,
                        "device": model.runtime.device,
                        "max_batch_size": model.batching.max_batch_size,
                        "max_queue_delay_ms": model.batching.max_queue_delay_s * 1e3,
                        "max_queue_size": self.settings.max_queue_size,
                        "inline_max_rows": model.inline_rows,
                        "has_card": model.has_card,
                    }
                },
            )
        for version in entry.failed:
            if version not in entry.loaded:
                metrics.set_ready(entry.name, version, False)

    # the repository API ------------------------------------------------------------------

    async def load(self, name: str) -> ModelEntry:
        """(Re)load one model from disk; new traffic moves to it once it is warm."""
        self._require_loaded()
        if not self.on_disk(name):
            raise ModelNotFound(f"no model {name!r} in the model repository")
        model_dir = self.root / name
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
                raise ModelNotFound(f"no model {name!r} in the model repository")
            self.unloaded.add(name)
            await self._remember_files(name)
            await self._retire(list(entry.loaded.values()))
            log.info("model %s unloaded", name, extra={"fields": {"model": name}})

    async def _retire(self, models: list[LoadedModel]) -> None:
        for model in models:
            serving = self.entries.get(model.name)
            if serving is None or model.version not in serving.loaded:  # not replaced
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
                    IndexEntry(name, str(v), UNAVAILABLE, reason) for v in self.versions_of(name)
                )
                continue
            if entry.problem:
                rows.append(IndexEntry(name, "", UNAVAILABLE, entry.problem))
            for version in entry.versions:
                if version in entry.loaded:
                    rows.append(IndexEntry(name, str(version), READY, ""))
                else:
                    rows.append(IndexEntry(name, str(version), UNAVAILABLE, entry.failed[version]))
        return [row for row in rows if row.state == READY] if ready_only else rows

    def versions_of(self, name: str) -> list[int]:
        try:
            return layout.versions(self.root / name)
        except OSError:
            return []

    def statistics(self, name: str = "", version: str | None = None) -> list[dict]:
        """Triton's statistics of one version, every loaded version of a model, or (no name)
        of every model."""
        if name:
            versions = [self.get(name, version)] if version else self.entry(name).loaded.values()
        else:
            self._require_loaded()
            versions = [m for e in self.entries.values() for m in e.loaded.values()]
        models = sorted(versions, key=lambda m: (m.name, m.version))
        return [statistics.for_version(m.name, m.version).as_json() for m in models]

    # polling -----------------------------------------------------------------------------

    async def _remember_files(self, name: str) -> None:
        """Record the model's files as seen now (a file walk: off the event loop). A walk that
        fails records nothing, so the next poll tries the model again."""
        try:
            self._fingerprints[name] = await asyncio.to_thread(self.fingerprint, name)
        except OSError as error:
            self._fingerprints.pop(name, None)
            log.error("model %s: its files cannot be listed: %s", name, error.strerror)

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
        self.scan_problem = None  # readable again
        for name in names:
            fingerprint = await asyncio.to_thread(self.fingerprint, name)
            if fingerprint != self._fingerprints.get(name):
                log.info(
                    "model %s changed on disk; loading", name, extra={"fields": {"model": name}}
                )
                await self._load_polled(name)
        for name in set(self.entries) - set(names):
            log.info("model %s left the repository; unloading", name)
            await self.unload(name)
            self.unloaded.discard(name)

    async def _load_polled(self, name: str) -> None:
        """`load`, where what one model's files do to it stops neither the poll nor the models
        after it (the model keeps what serves, and the next poll tries it again)."""
        try:
            await self.load(name)
        except Exception:
            self._fingerprints.pop(name, None)
            log.exception("model %s could not be reloaded", name)

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
            default = entry.default_version
            if default is None:
                raise ModelNotReady(f"model {name!r} is not ready: {entry.reason()}")
            return entry.loaded[default]
        if not (version.isascii() and version.isdigit()) or int(version) not in entry.versions:
            listed = ", ".join(str(v) for v in entry.versions)
            raise ModelNotFound(f"model {name!r} has no version {version!r}; versions: {listed}")
        if int(version) not in entry.loaded:
            raise ModelNotReady(
                f"model {name!r} version {version} is not ready: {entry.failed[int(version)]}"
            )
        return entry.loaded[int(version)]
