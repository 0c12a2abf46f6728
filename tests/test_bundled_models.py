"""The tests' list of bundled models is the committed repository, version for version."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import BUNDLED_VERSIONS, ROOT


def committed_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "models"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return listing.stdout.split()


def test_the_bundled_list_names_every_committed_version_and_no_other() -> None:
    committed: dict[str, set[str]] = {}
    for path in committed_files():
        _, name, *rest = path.split("/")
        if len(rest) == 2:  # models/<name>/<version>/<file>
            committed.setdefault(name, set()).add(rest[0])
        else:
            assert rest == ["config.pbtxt"], path
    assert committed == {name: set(versions) for name, versions in BUNDLED_VERSIONS.items()}
