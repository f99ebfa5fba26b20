"""A worker's bundle cache: checked before each use, repaired when a test changed it,
cleaned of bundles unused for days (issue 16, items 5 and 7)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from dtf.bundle_archive import Limits
from dtf.bundle_cache import cached, clean, locked

LIMITS = Limits(max_bytes=2**20, max_files=100)
SHA = "ab" * 32
DAY = 86400


def bundle(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Source:
    """The database's side: the archive, and how often a worker had to fetch it."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.data = bundle(files)
        self.loads = 0

    def __call__(self) -> bytes:
        self.loads += 1
        return self.data


@pytest.fixture
def source() -> Source:
    return Source({"test_a.py": b"def test_a(): pass\n", "pkg/mod.py": b"X = 1\n"})


def use(cache: Path, source: Source, sha: str = SHA) -> Path:
    return cached(cache, sha, source, LIMITS)


def test_a_bundle_is_unpacked_once_and_then_reused_as_is(tmp_path, source):
    root = use(tmp_path, source)
    assert (root / "pkg" / "mod.py").read_bytes() == b"X = 1\n"
    assert use(tmp_path, source) == root
    assert source.loads == 1


def test_files_a_test_added_are_left_and_need_no_fetch(tmp_path, source):
    root = use(tmp_path, source)
    (root / "output.xml").write_text("<report/>")
    (root / "pkg" / "__pycache__").mkdir()
    use(tmp_path, source)
    assert (root / "output.xml").exists() and source.loads == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda root: (root / "test_a.py").unlink(),
        lambda root: (root / "pkg" / "mod.py").write_bytes(b"X = 2\n"),
        lambda root: (root / "pkg" / "mod.py").chmod(0o755),
        lambda root: os.utime(root / "pkg" / "mod.py", (1e9, 1e9)),
        lambda root: shutil.rmtree(root / "pkg"),
    ],
    ids=["deleted", "rewritten", "mode changed", "touched", "folder deleted"],
)
def test_what_a_test_changed_is_unpacked_again_before_the_next_use(tmp_path, source, damage):
    root = use(tmp_path, source)
    damage(root)
    assert use(tmp_path, source) == root
    assert (root / "test_a.py").read_bytes() == b"def test_a(): pass\n"
    assert (root / "pkg" / "mod.py").read_bytes() == b"X = 1\n"
    assert (root / "pkg" / "mod.py").stat().st_mode & 0o777 == 0o644
    assert source.loads == 2
    use(tmp_path, source)
    assert source.loads == 2  # repaired, the manifest matches again


def test_a_folder_replaced_by_a_link_is_a_folder_again(tmp_path, source):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mod.py").write_bytes(b"X = 1\n")
    root = use(tmp_path / "cache", source)
    for path in (root / "pkg").iterdir():
        path.unlink()
    (root / "pkg").rmdir()
    (root / "pkg").symlink_to(elsewhere)
    use(tmp_path / "cache", source)
    assert not (root / "pkg").is_symlink()
    assert (root / "pkg" / "mod.py").read_bytes() == b"X = 1\n"


def test_a_lost_manifest_means_the_bundle_is_unpacked_again_in_place(tmp_path, source):
    root = use(tmp_path, source)
    (root / "test_a.py").write_text("broken")
    (tmp_path / f"{SHA}.manifest").unlink()
    use(tmp_path, source)
    assert (root / "test_a.py").read_bytes() == b"def test_a(): pass\n"


def age(cache: Path, sha: str, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(cache / f"{sha}.manifest", (then, then))


def test_bundles_unused_for_the_cache_days_are_removed(tmp_path, source, monkeypatch):
    monkeypatch.setenv("DTF_BUNDLE_CACHE_DAYS", "7")
    old, recent = "01" * 32, "02" * 32
    use(tmp_path, source, old)
    use(tmp_path, source, recent)
    age(tmp_path, old, 8)
    age(tmp_path, recent, 6)
    crashed = tmp_path / ".0123456789ab-x"  # a staging folder a killed unpack left
    crashed.mkdir()
    half_written = tmp_path / f"{recent}.manifest.123.tmp"
    half_written.write_text("{")
    lone = tmp_path / f"{'04' * 32}.manifest"  # its folder was removed by hand
    lone.write_text("{}")
    for leftover in (crashed, half_written, lone):
        os.utime(leftover, (time.time() - 8 * DAY,) * 2)

    assert clean(tmp_path) == [old, "04" * 32]

    assert not (tmp_path / old).exists() and not (tmp_path / f"{old}.manifest").exists()
    assert not (tmp_path / f"{old}.lock").exists()
    assert (tmp_path / recent).is_dir() and (tmp_path / f"{recent}.manifest").exists()
    assert not crashed.exists() and not half_written.exists() and not lone.exists()


def test_each_use_counts_as_use(tmp_path, source):
    use(tmp_path, source)
    age(tmp_path, SHA, 30)
    use(tmp_path, source)
    assert clean(tmp_path, days=7) == []


def test_a_bundle_in_use_by_another_process_is_not_removed(tmp_path, source):
    use(tmp_path, source)
    age(tmp_path, SHA, 30)
    with locked(tmp_path / f"{SHA}.lock"):
        assert clean(tmp_path, days=7) == []
    assert (tmp_path / SHA).is_dir()


def test_unpacking_a_new_bundle_cleans_the_cache(tmp_path, source):
    old = "03" * 32
    use(tmp_path, source, old)
    age(tmp_path, old, 8)
    use(tmp_path, source)  # SHA: a new bundle
    assert not (tmp_path / old).exists()
