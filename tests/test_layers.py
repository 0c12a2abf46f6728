"""The layering is the architecture: read every import and fail on one that runs the wrong way.

`modelrepo` (the repository format) imports neither `training` nor `service`; those two never
import each other. Inside `service`, layers from the ground up: foundation (settings, errors,
logs, metrics, request records, drain, workers) -> runtime -> batcher -> repository -> codecs ->
transport (`service.http`) -> `__main__`. A module may import its own layer or one below; no
module below the transport imports a web or RPC framework.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("modelrepo", "service", "training")
SERVICE_LAYERS = {
    "service.settings": 0,
    "service.errors": 0,
    "service.api_key": 0,
    "service.logs": 0,
    "service.metrics": 0,
    "service.statistics": 0,
    "service.metric_files": 0,
    "service.request_record": 0,
    "service.in_flight": 0,
    "service.drain": 0,
    "service.fair_pool": 0,
    "service.workers": 0,
    "service.runtime": 1,
    "service.torchscript_runtime": 1,
    "service.onnx_runtime": 1,
    "service.batching": 2,
    "service.loading": 3,
    "service.repository": 3,
    "service.codecs": 4,
    "service.services": 4,
    "service.http": 5,
    "service.grpc": 5,
    "service.__main__": 6,
}
TRANSPORT = SERVICE_LAYERS["service.http"]
FRAMEWORKS = ("litestar", "starlette", "uvicorn", "httptools", "grpc")
FORBIDDEN_PACKAGES = {
    "modelrepo": {"service", "training"},
    "training": {"service"},
    "service": {"training"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    """Every module `path` imports, at any depth of the file (function-level imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def layer_of(module: str) -> int | None:
    """The service layer of `module` (by its longest listed prefix), or None outside them."""
    best = None
    for prefix, layer in SERVICE_LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, layer)
    return None if best is None else best[1]


def violations(root: Path) -> list[str]:
    """Each import under `root`'s packages that runs against the layering, as a sentence."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            for imported in imports_of(path):
                found.extend(broken_rules(module, imported))
    return sorted(set(found))


def broken_rules(module: str, imported: str) -> list[str]:
    package, top = module.split(".", 1)[0], imported.split(".", 1)[0]
    if top in FORBIDDEN_PACKAGES.get(package, ()):
        return [f"{module} imports {imported}: {package} must not import {top}"]
    own, theirs = layer_of(module), layer_of(imported)
    if own is None:
        return []
    if theirs is not None and theirs > own:
        return [f"{module} (layer {own}) imports {imported} (layer {theirs}), a layer above"]
    if own < TRANSPORT and top in FRAMEWORKS:
        return [f"{module} imports {imported}: only the transport may use {top}"]
    return []


def test_the_code_keeps_its_layers() -> None:
    assert violations(ROOT) == []


def test_every_service_module_has_a_layer() -> None:
    unlisted = [
        module_name(path, ROOT)
        for path in (ROOT / "service").rglob("*.py")
        if module_name(path, ROOT) != "service" and layer_of(module_name(path, ROOT)) is None
    ]
    assert unlisted == []


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("service/batching.py", "from service.http.asgi import read_body\n", "a layer above"),
        ("service/codecs/oip_v2.py", "import litestar\n", "only the transport"),
        ("service/repository.py", "def f():\n    from service.codecs import images\n", "above"),
        ("training/export.py", "from service.repository import LoadedModel\n", "must not"),
        ("modelrepo/card.py", "import training.tasks\n", "must not import training"),
        ("service/runtime.py", "from training import nets\n", "must not import training"),
    ],
)
def test_a_bad_import_is_caught(tmp_path: Path, module: str, source: str, broken: str) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / module).write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1
    assert broken in found[0]
