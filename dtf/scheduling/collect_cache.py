"""Collect once, and not again for an unchanged suite: collections cached by file content.

The key covers the interpreter, pytest's arguments and the content of every
project file (what a code bundle would hold), so any edit, a new conftest or
another -k collects again. Collections with errors are never cached: the
environment may be fixed without a file changing. ``DTF_COLLECT_CACHE=0``
turns the cache off (for suites whose parametrization reads files outside
the project or the installed packages). Modules skipped as a whole are cached
with the items: they are part of what pytest reports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dtf.bundles import project_files
from dtf.executor.collect import CollectedItem, Collection, collect
from dtf.executor.records import TestRecord

#: Larger projects are collected every time: hashing them would cost more.
MAX_FILES = 20_000


def cached_collect(
    paths: Sequence[str],
    invocation_dir: Path,
    cache_dir: Path,
    *,
    keyword: str | None = None,
    markexpr: str | None = None,
    extra_args: Sequence[str] = (),
) -> Collection:
    """``collect`` with a cache in ``cache_dir``; the same arguments and files hit it.

    The files that count are those of the rootdir pytest chose (it may lie above
    ``invocation_dir``); a collection with items outside it (``--pyargs`` into
    site-packages, a path outside the project) is not cached."""
    key = None if os.environ.get("DTF_COLLECT_CACHE") == "0" else _key(
        paths, invocation_dir, keyword, markexpr, extra_args
    )  # fmt: skip
    entry = cache_dir / f"{key}.json" if key else None
    if entry is not None and entry.is_file():
        try:
            data = json.loads(entry.read_text())
            if data["fingerprint"] == _fingerprint(Path(data["rootdir"])):
                return Collection(
                    items=[CollectedItem(**i) for i in data["items"]],
                    errors=[TestRecord.from_dict(r) for r in data.get("skipped", [])],
                    rootdir=data["rootdir"],
                    inifile=data.get("inifile"),
                )
        except (OSError, ValueError, TypeError, KeyError):
            pass  # a damaged entry is collected again and rewritten
    collection = collect(
        paths, invocation_dir, keyword=keyword, markexpr=markexpr, extra_args=extra_args
    )
    if entry is not None and _cacheable(collection, invocation_dir):
        fingerprint = _fingerprint(Path(collection.rootdir))
        if fingerprint is None:
            return collection
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        document = {
            "rootdir": collection.rootdir,
            "inifile": collection.inifile,
            "fingerprint": fingerprint,
            "items": [dataclasses.asdict(i) for i in collection.items],
            "skipped": [r.to_dict() for r in collection.errors],
        }
        tmp.write_text(json.dumps(document))
        os.replace(tmp, entry)
    return collection


def _cacheable(collection: Collection, invocation_dir: Path) -> bool:
    if collection.rootdir is None or any(r.outcome != "skipped" for r in collection.errors):
        return False
    rootdir = Path(collection.rootdir).resolve()
    if rootdir == rootdir.parent:  # the filesystem's root: far too many files
        return False
    return all(
        _is_within((invocation_dir / item.path).resolve(), rootdir) for item in collection.items
    )


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _key(paths, invocation_dir: Path, keyword, markexpr, extra_args) -> str:
    header = [sys.executable, sys.version, str(invocation_dir), list(paths), keyword, markexpr,
              list(extra_args)]  # fmt: skip
    return hashlib.sha256(json.dumps(header).encode()).hexdigest()


def _fingerprint(rootdir: Path) -> str | None:
    """A digest of every project file under ``rootdir`` (names and contents); None when
    there are too many to hash or one cannot be read."""
    files = project_files(rootdir, limit=MAX_FILES)
    if len(files) > MAX_FILES:
        return None
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        try:
            digest.update(hashlib.sha256((rootdir / name).read_bytes()).digest())
        except OSError:
            return None
    return digest.hexdigest()
