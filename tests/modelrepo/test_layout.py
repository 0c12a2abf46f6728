"""The repository layout: versions listed in numeric order, published without overwriting."""

from pathlib import Path

from modelrepo import layout


def test_versions_are_numbered_directories_in_numeric_order(tmp_path: Path) -> None:
    for name in ("10", "2", "1", "x", ".staging-abc"):
        (tmp_path / name).mkdir()
    (tmp_path / "3").write_text("a file, not a version")
    assert layout.versions(tmp_path) == [1, 2, 10]
    assert layout.versions(tmp_path / "missing") == []


def test_only_what_triton_takes_for_a_version_is_one(tmp_path: Path) -> None:
    # "01" would be a second version 1; "²" is a digit to str.isdigit, no number to int, and
    # ARABIC-INDIC DIGIT ONE is 1 to int.
    for name in ("1", "01", "0", "²", "\u0661", "007", "12"):
        (tmp_path / name).mkdir()
    assert layout.versions(tmp_path) == [1, 12]


def test_model_names_leave_hidden_directories_out(tmp_path: Path) -> None:
    for name in ("iris", ".git", "mnist"):
        (tmp_path / name).mkdir()
    (tmp_path / "README").write_text("")
    assert layout.model_names(tmp_path) == ["iris", "mnist"]


def test_publish_retries_with_the_next_number_when_one_is_taken(tmp_path: Path) -> None:
    model_dir = tmp_path / "iris"
    seen: list[int] = []

    def finish(staging: Path, version: int) -> None:
        seen.append(version)
        if len(seen) == 1:  # another writer claims this number meanwhile
            (model_dir / str(version)).mkdir()
            (model_dir / str(version) / "theirs").write_text("")
        (staging / "card.json").write_text(str(version))

    staging = layout.new_staging_dir(model_dir)
    assert layout.publish(staging, model_dir, finish) == 2
    assert seen == [1, 2]
    assert (model_dir / "1" / "theirs").exists()
    assert (model_dir / "2" / "card.json").read_text() == "2"
    assert not staging.exists()


def test_write_atomically_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "config.pbtxt"
    layout.write_atomically(path, "one")
    layout.write_atomically(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["config.pbtxt"]


def test_sha256_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"abc")
    assert layout.sha256_of(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_a_published_version_is_readable_by_other_users(tmp_path: Path) -> None:
    """A server that runs as another user (the container's) reads what training published."""
    staging = layout.new_staging_dir(tmp_path / "m")
    (staging / "model.pt").write_bytes(b"weights")
    version = layout.publish(staging, tmp_path / "m", lambda directory, number: None)
    mode = (tmp_path / "m" / str(version)).stat().st_mode
    assert mode & 0o755 == 0o755
