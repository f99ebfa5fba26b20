"""Run a batch of pytest node ids in child processes that may crash or hang.

Each child runs ``python -m pytest -p dtf.pytest_plugin`` over the batch's files; the plugin
streams one JSON line per event to a file that this module tails. A child that crashes or
hangs in a test is replaced by a fresh one for the ids that have not started yet.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dtf.executor.lifetime import die_with_parent
from dtf.executor.records import TestRecord, bounded

# Seconds a killed child gets between SIGTERM and SIGKILL.
KILL_GRACE = 2.0
# Outside any test (collection, session start/finish) a child may go this long, or
# test_timeout if longer, without an event before it counts as stalled and is killed.
STALL_TIMEOUT_FLOOR = 300.0
# Bytes of a child's stdout/stderr quoted in crash and error records.
OUTPUT_TAIL_BYTES = 8 * 1024


@dataclass
class BatchOutcome:
    """What a batch produced; ``counts`` holds only outcomes that occurred."""

    counts: dict[str, int]
    children: int
    exit_codes: list[int]


def run_pytest_batch(
    nodeids: Sequence[str],
    rootdir: Path,
    *,
    test_timeout: float,
    on_record: Callable[[TestRecord], None],
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    poll_interval: float = 0.05,
) -> BatchOutcome:
    """Run ``nodeids`` (relative to ``rootdir``) and call ``on_record`` for each result.

    ``on_record`` is called from the calling thread as each result arrives. Every id gets at
    least one record: its pytest results, or one runner-made record (when="run") saying it
    crashed, timed out, or never ran (outcome "error"). ``env`` is merged over os.environ.
    Returns once no id is left to run; each child started runs at least one test or is the
    last one, so this ends after at most len(nodeids) children.
    """
    if test_timeout <= 0:
        raise ValueError(f"test_timeout must be positive, got {test_timeout}")
    rootdir = Path(rootdir).resolve()
    counts: Counter[str] = Counter()

    def emit(record: TestRecord) -> None:
        counts[record.outcome] += 1
        on_record(record)

    pending = list(dict.fromkeys(nodeids))
    pending = _drop_missing_files(pending, rootdir, emit)
    child_env = {**os.environ, **(env or {})}
    exit_codes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="dtf-batch-") as tmp:
        while pending:
            workdir = Path(tmp) / f"child-{len(exit_codes) + 1}"
            workdir.mkdir()
            child = _Child(pending, rootdir, workdir, python, extra_args, child_env)
            result = child.run(test_timeout, poll_interval, emit)
            exit_codes.append(result.exit_code)
            for nodeid in pending:
                if nodeid in result.started and nodeid not in result.reported:
                    emit(_not_run(nodeid, result))
            # Ids that started are never retried, so every new child makes progress.
            left = [n for n in pending if n not in result.started]
            if result.restart and left:
                pending = left
                continue
            for nodeid in left:
                emit(_not_run(nodeid, result))
            pending = []
    return BatchOutcome(counts=dict(counts), children=len(exit_codes), exit_codes=exit_codes)


def _drop_missing_files(
    nodeids: list[str], rootdir: Path, emit: Callable[[TestRecord], None]
) -> list[str]:
    """Report ids whose file is missing here; pytest would refuse the whole batch for them."""
    kept = []
    for nodeid in nodeids:
        path = _file_of(nodeid)
        if (rootdir / path).exists():
            kept.append(nodeid)
        else:
            emit(
                TestRecord(
                    nodeid=nodeid,
                    outcome="error",
                    when="run",
                    longrepr=f"file not found on this worker: {path} (in {rootdir})",
                )
            )
    return kept


def _not_run(nodeid: str, result: _ChildResult) -> TestRecord:
    return TestRecord(
        nodeid=nodeid, outcome="error", when="run", longrepr=bounded(result.not_run_reason(nodeid))
    )


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@dataclass
class _ChildResult:
    exit_code: int
    restart: bool
    started: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    collect_errors: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def not_run_reason(self, nodeid: str) -> str:
        """Why ``nodeid`` has no result: its module's collection error if known."""
        for collector, longrepr in self.collect_errors.items():
            if (
                nodeid == collector
                or nodeid.startswith(collector + "::")
                or (collector and nodeid.startswith(collector.rstrip("/") + "/"))
            ):
                return f"collection of {collector} failed on this worker:\n{longrepr}"
        if nodeid in self.started:
            return f"test started but pytest reported no result for it; {self.reason}"
        return f"test did not run; {self.reason}"


class _Child:
    """One pytest child process over a list of ids, and the tail of its event file."""

    def __init__(
        self,
        nodeids: list[str],
        rootdir: Path,
        workdir: Path,
        python: str,
        extra_args: Sequence[str],
        env: dict[str, str],
    ) -> None:
        self.nodeids = nodeids
        self.wanted = set(nodeids)
        self.select = workdir / "select.jsonl"
        self.events = workdir / "events.jsonl"
        self.stdout = workdir / "stdout.txt"
        self.stderr = workdir / "stderr.txt"
        self.select.write_text("".join(json.dumps(n) + "\n" for n in nodeids), encoding="utf-8")
        self.events.touch()
        files = list(dict.fromkeys(_file_of(n) for n in nodeids))
        self.cmd = [
            python,
            "-m",
            "pytest",
            "-p",
            "dtf.pytest_plugin",
            "--dtf-select",
            str(self.select),
            "--dtf-events",
            str(self.events),
            "-p",
            "no:cacheprovider",
            "-q",
            f"--rootdir={rootdir}",
            "--continue-on-collection-errors",
            *extra_args,
            *files,
        ]
        self.rootdir = rootdir
        self.env = env
        self.result = _ChildResult(exit_code=0, restart=False)
        self.in_flight: str | None = None
        self.starts = 0
        self.test_started = 0.0
        self._offset = 0
        self._partial = b""

    def run(
        self, test_timeout: float, poll_interval: float, emit: Callable[[TestRecord], None]
    ) -> _ChildResult:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            proc = subprocess.Popen(
                self.cmd,
                cwd=self.rootdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        try:
            return self._watch(proc, test_timeout, poll_interval, emit)
        finally:
            # Also reaps what the tests left running in the child's process group.
            _kill_group(proc, signal.SIGKILL)
            proc.wait()

    def _watch(
        self,
        proc: subprocess.Popen,
        test_timeout: float,
        poll_interval: float,
        emit: Callable[[TestRecord], None],
    ) -> _ChildResult:
        stall_timeout = max(test_timeout, STALL_TIMEOUT_FLOOR)
        last_event = time.monotonic()
        killed_for = ""
        while True:
            exited = proc.poll() is not None
            now = time.monotonic()
            starts = self.starts
            if self._drain(emit):
                last_event = now
                if self.starts != starts:
                    self.test_started = now
            if exited:
                break
            if self.in_flight is not None and now - self.test_started > test_timeout:
                killed_for = "timeout"
            elif self.in_flight is None and now - last_event > stall_timeout:
                killed_for = "stall"
            if killed_for:
                _terminate(proc)
                self._drain(emit)
                break
            time.sleep(poll_interval)
        code = proc.wait()
        return self._conclude(code, killed_for, test_timeout, stall_timeout, emit)

    def _conclude(
        self,
        code: int,
        killed_for: str,
        test_timeout: float,
        stall_timeout: float,
        emit: Callable[[TestRecord], None],
    ) -> _ChildResult:
        result = self.result
        result.exit_code = code
        nodeid = self.in_flight
        elapsed = time.monotonic() - self.test_started
        if nodeid is not None and killed_for == "timeout":
            emit(
                TestRecord(
                    nodeid=nodeid,
                    outcome="timed_out",
                    when="run",
                    duration=elapsed,
                    longrepr=f"test exceeded its timeout of {test_timeout:g}s",
                )
            )
        elif nodeid is not None:
            emit(
                TestRecord(
                    nodeid=nodeid,
                    outcome="crashed",
                    when="run",
                    duration=elapsed,
                    longrepr=bounded(
                        f"pytest child {_describe_exit(code)} while this test was "
                        f"running\n--- stderr (tail) ---\n{_tail(self.stderr)}"
                    ),
                )
            )
        if nodeid is not None:
            result.reported.add(nodeid)
            result.restart = True
        if killed_for == "stall":
            result.reason = (
                f"pytest child made no progress for {stall_timeout:g}s outside "
                f"any test (collection or session hooks) and was killed"
            )
        elif killed_for == "timeout":
            # Also when the test finished just as its timeout hit: the rest deserve a run.
            result.restart = True
            result.reason = "pytest child was killed at a test timeout"
        else:
            result.reason = f"pytest child {_describe_exit(code)}"
        result.reason += (
            f"\n--- stdout (tail) ---\n{_tail(self.stdout)}"
            f"\n--- stderr (tail) ---\n{_tail(self.stderr)}"
        )
        return result

    def _drain(self, emit: Callable[[TestRecord], None]) -> bool:
        """Handle the complete event lines written since the last call; True if any."""
        with self.events.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        if not chunk:
            return False
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # blank, or torn by a kill mid-write
            self._handle(event, emit)
        return bool(lines)

    def _handle(self, event: dict, emit: Callable[[TestRecord], None]) -> None:
        kind = event.get("event")
        nodeid = event.get("nodeid", "")
        if kind == "collect_error":
            self.result.collect_errors[nodeid] = event.get("longrepr") or ""
            return
        if nodeid not in self.wanted:
            return
        if kind == "start":
            self.in_flight = nodeid
            self.starts += 1
            self.result.started.add(nodeid)
        elif kind == "finish":
            self.in_flight = None
        elif kind == "result":
            self.result.reported.add(nodeid)
            emit(TestRecord.from_dict(event))


def _terminate(proc: subprocess.Popen) -> None:
    _kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    # The group id is the child's pid (start_new_session); the kernel does not reuse it
    # while any member of the group is alive, so this cannot hit a stranger.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit code {code})"
    return f"exited with code {code}"


def _tail(path: Path) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(size - OUTPUT_TAIL_BYTES, 0))
        data = fh.read()
    text = data.decode("utf-8", errors="replace").strip()
    return text if size <= OUTPUT_TAIL_BYTES else "..." + text
