"""A worker's cache of unpacked bundles: ``$DTF_HOME/bundles/<sha256>``.

Tests run inside a cached bundle and may change it. When a bundle is unpacked, a
manifest of what each member became (kind; a file's size, mtime and mode; a link's
target) is written beside it (``<sha256>.manifest``). Before each batch the bundle
is compared with its manifest, one ``lstat`` per member, and whatever a test
changed, deleted or replaced is unpacked again in place; files a test added are
left alone. A file rewritten with its size and mtime kept is not noticed.

Bundles unused for ``DTF_BUNDLE_CACHE_DAYS`` (7) are removed when the worker
unpacks a new one. One lock file per bundle (``<sha256>.lock``) keeps the
processes of a machine from unpacking, repairing or removing it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from dtf.bundle_archive import Limits, make_writable, unpack

logger = logging.getLogger(__name__)

MANIFEST = ".manifest"
LOCK = ".lock"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: A staging folder this old is a crashed unpack's leftover.
STAGING_MAX_AGE_S = 24 * 3600

Signature = list[str | int]


def cache_days() -> float:
    return float(os.environ.get("DTF_BUNDLE_CACHE_DAYS", "7"))


def cached(cache_dir: Path, sha256: str, load: Callable[[], bytes], limits: Limits) -> Path:
    """The bundle ``sha256`` unpacked in ``cache_dir`` as it was packed.

    ``load`` gives the archive: called on first use, and when a test changed the
    unpacked copy (the changed members are unpacked again)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / sha256
    manifest_path = cache_dir / (sha256 + MANIFEST)
    unpacked_new = False
    with locked(cache_dir / (sha256 + LOCK)):
        manifest = read_manifest(manifest_path)
        if manifest is not None and _is_directory(target):
            stale = changed(target, manifest)
            if not stale:
                os.utime(manifest_path)  # last used: what the cache cleaning goes by
                return target
            logger.warning(
                "bundle %s: %d path(s) changed since it was unpacked (%s), unpacking them again",
                sha256[:12], len(stale), ", ".join(sorted(stale)[:5]),
            )  # fmt: skip
            again = _with_contents(stale, manifest)
            unpack(load(), target, limits, only=again)
            manifest.update((name, signature(target / name)) for name in again)
        elif _is_directory(target):  # no manifest: lost, or a crash before it was written
            manifest = _manifest_of(target, unpack(load(), target, limits))
        else:
            _remove(target)
            manifest = _manifest_of(target, _unpack_new(load(), cache_dir, target, limits))
            unpacked_new = True
        write_manifest(manifest_path, manifest)
    if unpacked_new:
        try:
            clean(cache_dir)
        except OSError as exc:  # housekeeping: the batch runs all the same
            logger.warning("bundle cache %s: could not clean it: %s", cache_dir, exc)
    return target


def _unpack_new(data: bytes, cache_dir: Path, target: Path, limits: Limits) -> list[str]:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:12]}-", dir=cache_dir))
    try:
        names = unpack(data, staging, limits)
        os.rename(staging, target)
    finally:
        if _is_directory(staging):
            make_writable(staging)
            shutil.rmtree(staging, ignore_errors=True)
    return names


def signature(path: Path) -> Signature:
    """What ``path`` is now, as the manifest records it (``["missing"]``: nothing)."""
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return ["missing"]
    if stat.S_ISDIR(st.st_mode):
        return ["dir"]
    if stat.S_ISLNK(st.st_mode):
        return ["link", os.readlink(path)]
    if stat.S_ISREG(st.st_mode):
        return ["file", st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)]
    return ["other"]


def changed(root: Path, manifest: dict[str, Signature]) -> list[str]:
    """The paths of ``manifest`` that no longer hold what was unpacked there."""
    return [name for name, expected in manifest.items() if signature(root / name) != expected]


def _manifest_of(root: Path, names: list[str]) -> dict[str, Signature]:
    """Every member and every folder above one, as unpacked under ``root``."""
    paths = set(names)
    for name in names:
        paths.update(str(p) for p in PurePosixPath(name).parents if str(p) != ".")
    return {name: signature(root / name) for name in sorted(paths)}


def _with_contents(stale: list[str], manifest: dict[str, Signature]) -> set[str]:
    """``stale`` and, for a folder among them, everything below it."""
    folders = [name + "/" for name in stale if manifest.get(name) == ["dir"]]
    return set(stale) | {n for n in manifest if any(n.startswith(f) for f in folders)}


def read_manifest(path: Path) -> dict[str, Signature] | None:
    try:
        entries = json.loads(path.read_text())["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entries if isinstance(entries, dict) else None


def write_manifest(path: Path, entries: dict[str, Signature]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": 1, "entries": entries}))
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on ``path`` (created); yields False when ``wait`` is off and
    another process holds it. The file may be removed while held (see ``clean``)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed by whoever held it: lock the new file
    try:
        yield True
    finally:
        os.close(fd)


def clean(cache_dir: Path, *, days: float | None = None, now: float | None = None) -> list[str]:
    """Remove the bundles unused for ``days`` (``DTF_BUNDLE_CACHE_DAYS``) with their
    manifests and locks, and crashed unpacks' leftovers; the hashes of the bundles
    removed. A bundle another process holds is left for next time."""
    now = time.time() if now is None else now
    days = cache_days() if days is None else days
    oldest = now - 86400 * days
    hashes = set()
    for entry in cache_dir.iterdir():
        if entry.name.startswith(".") or entry.name.endswith(".tmp"):
            if _mtime(entry) < now - STAGING_MAX_AGE_S:
                _remove(entry)
        elif _SHA256.match(entry.name[:64]):
            hashes.add(entry.name[:64])
    removed = []
    for sha256 in sorted(hashes):
        if _last_used(cache_dir, sha256) >= oldest:
            continue
        with locked(cache_dir / (sha256 + LOCK), wait=False) as held:
            if held and _last_used(cache_dir, sha256) < oldest:
                _remove(cache_dir / sha256)
                (cache_dir / (sha256 + MANIFEST)).unlink(missing_ok=True)
                (cache_dir / (sha256 + LOCK)).unlink(missing_ok=True)
                removed.append(sha256)
    if removed:
        logger.info("bundle cache: removed %d bundle(s) unused for %g days", len(removed), days)
    return removed


def _last_used(cache_dir: Path, sha256: str) -> float:
    """The manifest's mtime (touched at each use), else the folder's."""
    for path in (cache_dir / (sha256 + MANIFEST), cache_dir / sha256):
        if path.exists():
            return _mtime(path)
    return 0.0  # a lone lock file


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _is_directory(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    """Remove ``path`` whatever it is (a test may have left read-only folders in it)."""
    if _is_directory(path):
        make_writable(path)
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
