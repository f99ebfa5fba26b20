"""Collect test ids once, on the planner side, in a pytest child process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dtf.executor.child_env import child_env
from dtf.executor.pytest_main import PYTEST_MAIN
from dtf.executor.records import TestRecord
from dtf.executor.rewrite_cache import rewrite_cache_args
from dtf.launch import python_module_command

# Exit codes with which `pytest --collect-only` still produced a usable collection.
_COLLECTED_EXIT_CODES = (0, 1, 5)


@dataclass(frozen=True)
class CollectedItem:
    """One selected test item."""

    nodeid: str
    path: str
    requirements: dict = field(default_factory=dict)


class CollectionFailed(Exception):
    """One-line message saying what pytest could not do."""


@dataclass
class Collection:
    """The selected items, and records with when="collect": errors, and modules skipped whole."""

    items: list[CollectedItem]
    errors: list[TestRecord]
    #: what pytest's own rules chose (shown to the user; batches reach the same)
    rootdir: str | None = field(default=None, compare=False)
    inifile: str | None = field(default=None, compare=False)


#: Suites with fewer test files than this are collected by one child.
SHARD_MIN_FILES = 40
#: At most this many children collect one suite at the same time.
MAX_SHARDS = 4


def collect(
    paths: Sequence[str],
    invocation_dir: Path,
    *,
    keyword: str | None = None,
    markexpr: str | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 600.0,
    python: str = sys.executable,
    shards: int | None = None,
) -> Collection:
    """Collect as ``pytest [extra_args] [paths]`` typed in ``invocation_dir`` would, -k/-m applied.

    pytest's own rules decide the rootdir, ini file, conftests and node ids (none of
    them is imposed); each item's ``path`` is its file relative to ``invocation_dir``.
    No paths means pytest's default (``testpaths``, else the directory).
    A large suite of directories is collected by several children at once
    (``shards``; default: one per core, see :func:`shard_count`), each importing
    a share of the files; the result is the same as one child's.
    The children see the environment the batches' children see: this process's, less
    dtf's settings and secrets (:mod:`dtf.executor.child_env`), so that the node ids
    are the same. Raises CollectionFailed for usage errors (missing path, bad -k/-m,
    bad option), a broken conftest, or a timeout.
    """
    invocation_dir = Path(invocation_dir).resolve()
    if shards is None:
        # Paths among pytest's own arguments are not known here; one child is always right.
        shards = 1 if extra_args else shard_count(paths, invocation_dir)
    # dtf's own options are written --opt=value: pytest takes every word that does not
    # start with "-" for a path when it looks for the rootdir and ini file.
    base = python_module_command(
        PYTEST_MAIN, "--collect-only", "-qq",
        "-p", "dtf.pytest_plugin",
        "-p", "no:cacheprovider",
        "--continue-on-collection-errors",
        *rewrite_cache_args(None),
        python=python, keep_cwd=True,
    )  # fmt: skip
    if keyword is not None:
        base += ["-k", keyword]
    if markexpr is not None:
        base += ["-m", markexpr]
    with tempfile.TemporaryDirectory(prefix="dtf-collect-") as tmp:
        outs = [Path(tmp) / f"collection-{i}.json" for i in range(max(1, shards))]
        commands = [
            [*base, f"--dtf-collect-out={out}", *_shard_option(i, len(outs)),
             *extra_args, *paths]
            for i, out in enumerate(outs)
        ]  # fmt: skip
        results = _run_all(commands, invocation_dir, timeout)
        for (rc, stdout, stderr), out in zip(results, outs, strict=True):
            if rc not in _COLLECTED_EXIT_CODES or not out.exists():
                raise CollectionFailed(failure_message(rc, stdout, stderr))
        docs = [json.loads(out.read_text(encoding="utf-8")) for out in outs]
    return _merged(docs)


def _shard_option(index: int, count: int) -> list[str]:
    return [f"--dtf-collect-shard={index}/{count}"] if count > 1 else []


def shard_count(paths: Sequence[str], invocation_dir: Path) -> int:
    """How many children collect: one per core (at most MAX_SHARDS) for a large suite
    given as directories; one for files, node ids or a small suite.
    ``DTF_COLLECT_SHARDS=N`` sets it."""
    forced = os.environ.get("DTF_COLLECT_SHARDS")
    if forced and forced.isdigit():
        return max(1, int(forced))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2:
        return 1
    roots = [invocation_dir / p for p in paths] if paths else [invocation_dir]
    if not all(root.is_dir() for root in roots):
        return 1
    files = _count_test_files(roots, limit=SHARD_MIN_FILES)
    return min(cores or 1, MAX_SHARDS) if files >= SHARD_MIN_FILES else 1


def _count_test_files(roots: list[Path], limit: int) -> int:
    """Files named like pytest's default test files, counting stops at ``limit``."""
    found = 0
    for root in roots:
        for _folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__")) and d != "node_modules"]
            found += sum(
                1
                for n in names
                if n.endswith(".py") and (n.startswith("test_") or n.endswith("_test.py"))
            )
            if found >= limit:
                return found
    return found


def _merged(docs: list[dict]) -> Collection:
    """One collection from the shards' documents, in the order one child would give."""
    found = {"rootdir": docs[0].get("rootdir"), "inifile": docs[0].get("inifile")}
    if len(docs) == 1:
        doc = docs[0]
        return Collection(
            items=[CollectedItem(**item) for item in doc["items"]],
            errors=[TestRecord.from_dict(err) for err in doc["errors"]],
            **found,
        )
    # Every shard walked the same files in the same order.
    order = {path: i for i, path in enumerate(docs[0].get("walked", []))}

    def file_rank(path: str) -> int:
        return order.get(path, len(order))

    items = sorted(
        ((file_rank(item["path"]), shard, i, item)
         for shard, doc in enumerate(docs) for i, item in enumerate(doc["items"])),
        key=lambda entry: entry[:3],
    )  # fmt: skip
    errors = sorted(
        ((file_rank(err["nodeid"].split("::")[0]), shard, i, err)
         for shard, doc in enumerate(docs) for i, err in enumerate(doc["errors"])),
        key=lambda entry: entry[:3],
    )  # fmt: skip
    return Collection(
        items=[CollectedItem(**entry[3]) for entry in items],
        errors=[TestRecord.from_dict(entry[3]) for entry in errors],
        **found,
    )


def _run_all(commands: list[list[str]], cwd: Path, timeout: float) -> list[tuple[int, str, str]]:
    if len(commands) == 1:
        return [_run(commands[0], cwd, timeout)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda cmd: _run(cmd, cwd, timeout), commands))


def _run(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, str, str]:
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        raise CollectionFailed(f"collection timed out after {timeout:g}s") from None
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    return proc.returncode, stdout, stderr


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


_ERROR_LINE = re.compile(r"^ERROR: (.+)$", re.MULTILINE)
_ARGPARSE_ERROR = re.compile(r"^.*?: error: (.+)$", re.MULTILINE)
_EXCEPTION_LINE = re.compile(r"^E\s+(.+)$", re.MULTILINE)


def failure_message(rc: int, stdout: str, stderr: str) -> str:
    """A one-line summary of why pytest failed, taken from its own output."""
    error = _ERROR_LINE.search(stderr) or _ERROR_LINE.search(stdout)
    if error:
        message = error.group(1).strip()
        # argparse errors come as "usage: ..." with the actual complaint a few lines below.
        argparse_error = _ARGPARSE_ERROR.search(stderr) if message.startswith("usage:") else None
        return argparse_error.group(1).strip() if argparse_error else message
    for text in (stderr, stdout):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            continue
        if "Traceback (most recent call last)" in text:
            return lines[-1]
        # e.g. "ImportError while loading conftest '...'." above a short traceback.
        exc = _EXCEPTION_LINE.findall(text)
        if exc:
            return f"{lines[0]} {exc[-1].strip()}"
        return lines[0]
    return f"pytest exited with code {rc} without reporting a collection"
