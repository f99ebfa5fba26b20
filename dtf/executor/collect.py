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

from dtf.executor.records import TestRecord

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


def collect(
    paths: Sequence[str],
    rootdir: Path,
    *,
    keyword: str | None = None,
    markexpr: str | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 600.0,
    python: str = sys.executable,
) -> Collection:
    """Collect ``paths`` (relative to ``rootdir``; none means pytest's default) with -k/-m applied.

    Node ids are relative to ``rootdir`` (passed to pytest as ``--rootdir``).
    Raises CollectionFailed for usage errors (missing path, bad -k/-m, bad option),
    a broken conftest, or a timeout.
    """
    rootdir = Path(rootdir).resolve()
    with tempfile.TemporaryDirectory(prefix="dtf-collect-") as tmp:
        out = Path(tmp) / "collection.json"
        cmd = [
            python,
            "-m",
            "pytest",
            "--collect-only",
            "-qq",
            "-p",
            "dtf.pytest_plugin",
            "--dtf-collect-out",
            str(out),
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            f"--rootdir={rootdir}",
        ]
        if keyword is not None:
            cmd += ["-k", keyword]
        if markexpr is not None:
            cmd += ["-m", markexpr]
        cmd += [*extra_args, *paths]
        rc, stdout, stderr = _run(cmd, rootdir, timeout)
        if rc not in _COLLECTED_EXIT_CODES or not out.exists():
            raise CollectionFailed(failure_message(rc, stdout, stderr))
        doc = json.loads(out.read_text(encoding="utf-8"))
    return Collection(
        items=[CollectedItem(**item) for item in doc["items"]],
        errors=[TestRecord.from_dict(err) for err in doc["errors"]],
    )


def _run(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, str, str]:
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
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
