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
    rootdir: Path,
    cache_dir: Path,
    *,
    keyword: str | None = None,
    markexpr: str | None = None,
    extra_args: Sequence[str] = (),
) -> Collection:
    """``collect`` with a cache in ``cache_dir``; the same arguments and files hit it."""
    key = None if os.environ.get("DTF_COLLECT_CACHE") == "0" else _key(
        paths, rootdir, keyword, markexpr, extra_args
    )  # fmt: skip
    entry = cache_dir / f"{key}.json" if key else None
    if entry is not None and entry.is_file():
        try:
            data = json.loads(entry.read_text())
            return Collection(
                items=[CollectedItem(**i) for i in data["items"]],
                errors=[TestRecord.from_dict(r) for r in data.get("skipped", [])],
            )
        except (OSError, ValueError, TypeError, KeyError):
            pass  # a damaged entry is collected again and rewritten
    collection = collect(paths, rootdir, keyword=keyword, markexpr=markexpr, extra_args=extra_args)
    if entry is not None and all(r.outcome == "skipped" for r in collection.errors):
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        document = {
            "items": [dataclasses.asdict(i) for i in collection.items],
            "skipped": [r.to_dict() for r in collection.errors],
        }
        tmp.write_text(json.dumps(document))
        os.replace(tmp, entry)
    return collection


def _key(paths, rootdir: Path, keyword, markexpr, extra_args) -> str | None:
    files = project_files(rootdir)
    if len(files) > MAX_FILES:
        return None
    digest = hashlib.sha256()
    header = [sys.executable, sys.version, str(rootdir), list(paths), keyword, markexpr,
              list(extra_args)]  # fmt: skip
    digest.update(json.dumps(header).encode())
    for name in files:
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        try:
            digest.update(hashlib.sha256((rootdir / name).read_bytes()).digest())
        except OSError:
            return None
    return digest.hexdigest()
