"""Run a batch of pytest node ids in child processes that may crash or hang.

Each child runs pytest as the run's collection did (the same arguments in the same
directory, so pytest's own rules give the same rootdir, ini file, conftests and node ids),
with ``dtf.pytest_plugin`` keeping only the batch's files and node ids; the plugin
streams one JSON line per event to a file that this module tails. A child that crashes or
hangs in a test is replaced by a fresh one for the ids that have not started yet.

Children are started one of two ways (``start_method``), watched the same way:

* ``"spawn"``: ``python -m dtf.executor.pytest_main -p dtf.pytest_plugin ...`` (pytest, less
  the interpreter's teardown) in a new interpreter.
* ``"fork"`` (warm, see :mod:`dtf.executor.warm`): the calling process imports pytest and
  the plugin once, and each child is an ``os.fork()`` of it that runs ``pytest.main`` with
  the same arguments. This saves the interpreter start and the pytest import per child.

The default is ``$DTF_EXECUTOR`` if set, else "fork" on Linux when ``python`` is this
interpreter, else "spawn"; another ``python`` always spawns. Forking is safe only while
the caller runs no other thread (a lock held by another thread at the fork stays held in
the child forever), so a child is forked only from the main thread while
``threading.active_count() == 1``; otherwise it is spawned, and the reason logged once per
process (also when a fork could not be faithful: see :func:`warm.fork_unsafe_reason`). The
caller must also never import the code under test: forked children start with its
``sys.modules``. ``BatchOutcome.start_methods`` says how each child was started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dtf.executor import reaper, warm
from dtf.executor.child_env import child_env
from dtf.executor.lifetime import die_with_parent
from dtf.executor.pytest_main import PYTEST_MAIN
from dtf.executor.records import TestRecord, bounded
from dtf.executor.rewrite_cache import rewrite_cache_args
from dtf.executor.warm import Child
from dtf.launch import python_module_command
from dtf.recovery import classes as fc

logger = logging.getLogger(__name__)

START_METHODS = ("fork", "spawn")
# Environment variable that chooses the start method when the caller does not.
START_METHOD_ENV = "DTF_EXECUTOR"

# Seconds a killed child gets between SIGTERM and SIGKILL.
KILL_GRACE = 2.0
# Outside any test (collection, session start/finish) a child may go this long, or
# test_timeout if longer, without an event before it counts as stalled and is killed.
STALL_TIMEOUT_FLOOR = 300.0
# Bytes of a child's stdout/stderr quoted in crash and error records.
OUTPUT_TAIL_BYTES = 8 * 1024
# Seconds between looks at the event file until a child's first test starts, so that
# startup_s is measured closely; poll_interval applies afterwards, and once a child has
# been starting for STARTUP_POLL_WINDOW seconds (a slow collection).
STARTUP_POLL_INTERVAL = 0.005
STARTUP_POLL_WINDOW = 10.0
# Seconds between asking the batch's Handoff whether another worker slot is idle.
HANDOFF_CHECK_S = 0.5


@dataclass
class BatchOutcome:
    """What a batch produced; ``counts`` holds only outcomes that occurred.

    ``startup_s``: seconds from starting the first child to its first test starting
    (interpreter start, imports, collection); if no test started, to that child's exit;
    0.0 if no child was started. ``start_methods``: "fork" or "spawn" per child.
    """

    counts: dict[str, int]
    children: int
    exit_codes: list[int]
    startup_s: float = 0.0
    start_methods: list[str] = field(default_factory=list)
    #: ids left without a record because recovery moves them elsewhere (``defer``)
    deferred: list[str] = field(default_factory=list)
    #: the failure class each deferred id was deferred for (env_broken, killed)
    deferred_classes: dict[str, str] = field(default_factory=dict)
    #: infrastructure failures met inside the batch (crash, hang, oom, env_broken)
    incidents: int = 0
    #: ids handed to another worker (``Handoff``): no record here
    handed_off: list[str] = field(default_factory=list)
    #: ids never run because ``stop`` said so (-x / --maxfail): no record, as with pytest
    stopped: list[str] = field(default_factory=list)


@dataclass
class Incident:
    """An infrastructure failure inside a batch, for the recovery policy to decide on.

    ``nodeid`` is the culprit (the test in flight), None when unknown; ``nodeids`` are
    the tests concerned: the culprit alone, or the ids the failure left without a result.
    ``retries`` is how often the culprit was already retried in this batch.
    """

    failure_class: str
    nodeid: str | None
    nodeids: list[str]
    detail: str
    retries: int = 0


@dataclass
class Decision:
    """What to do about an incident.

    ``action``: ``retry`` (the culprit again, after ``delay`` seconds; in a spawned
    interpreter when ``spawn``), ``isolate``
    (report the culprit as crashed / timed_out / out_of_memory and go on), ``bisect``
    (run each half of ``nodeids`` in a child of its own), ``report`` (what the runner
    says without recovery: error records naming the failure), ``defer`` (no record:
    the caller moves them elsewhere), ``give_up`` (infra_error records).
    """

    action: str
    strategy: str = ""
    delay: float = 0.0
    spawn: bool = False
    token: object = None


class RecoveryHooks:
    """The runner's default: isolate a known culprit, report everything else (no policy).

    :mod:`dtf.tasks.execute` passes one backed by the recovery policy and its table.
    """

    def decide(self, incident: Incident) -> Decision:
        if incident.nodeid is not None and incident.failure_class in fc.TEST_CLASSES:
            return Decision("isolate")
        return Decision("report")

    def resolved(self, decision: Decision, ok: bool) -> None:
        """Called once per decision when its outcome is known."""


class Handoff:
    """Work stealing at the end of a run: hand the tail of a batch to an idle worker slot.

    Every ``HANDOFF_CHECK_S`` while a child runs tests, the runner asks ``wanted()``; if
    so, it asks ``first_to_hand`` which of the tests not started yet to give away (that
    one and all after it), telling it what the child measured so far (seconds per test
    it finished, its start-up); the child drops them unless one started meanwhile, and
    the runner passes them to ``hand``, which must see that they run elsewhere. This
    default never hands anything; :mod:`dtf.tasks.handoff` has the one a run uses.
    """

    def wanted(self) -> bool:
        return False

    def first_to_hand(
        self, pending: list[str], measured: Mapping[str, float], startup_s: float
    ) -> str | None:
        return None

    def hand(self, nodeids: list[str]) -> None:
        raise NotImplementedError


def run_pytest_batch(
    nodeids: Sequence[str],
    invocation_dir: Path,
    *,
    test_timeout: float,
    args: Sequence[str] | None = None,
    files: Mapping[str, str] | None = None,
    on_record: Callable[[TestRecord], None],
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    poll_interval: float = 0.05,
    start_method: str | None = None,
    recovery: RecoveryHooks | None = None,
    memory_limit_mb: float | None = None,
    reruns: int = 0,
    on_flush: Callable[[], object] | None = None,
    handoff: Handoff | None = None,
    stop: Callable[[], str | None] | None = None,
) -> BatchOutcome:
    """Run ``nodeids`` as ``pytest [args]`` in ``invocation_dir`` names them; call ``on_record``
    for each result.

    ``args`` are the run's pytest arguments, options and paths, exactly as its collection
    got them (None: the batch's files, for ids relative to ``invocation_dir``).
    ``files`` maps each id to its file relative to ``invocation_dir`` (default: the
    id's own file part); only those files are collected. ``extra_args`` are options added
    to every child (before ``args``).

    ``on_record`` is called from the calling thread as each result arrives. Every id gets at
    least one record: its pytest results, or one runner-made record (when="run") saying it
    crashed, timed out, ran out of memory, or never ran (outcome "error") -- unless
    ``recovery`` defers it (``BatchOutcome.deferred``). ``env`` is merged over os.environ
    less dtf's settings and secrets (:mod:`dtf.executor.child_env`).
    ``recovery`` decides what happens when a child crashes, hangs or runs out of memory
    (default: the culprit is isolated, see :class:`RecoveryHooks`). ``memory_limit_mb``
    caps each child's address space (RLIMIT_AS). ``reruns``: a test that failed runs again
    up to that many times; one that then passes is reported ``flaky`` (attempt 2..).
    ``start_method``: "fork", "spawn" or None for the default (see the module docstring).
    ``on_flush``: called after each group of records that arrived together (all the
    lines the child wrote since the last look), so that they can be stored at once.
    ``handoff``: may give the tests a child has not started to another worker
    (:class:`Handoff`); they get no record here (``BatchOutcome.handed_off``).
    ``stop``: once it returns ``"after_test"`` (-x / --maxfail), the running child stops
    after its current test; once it returns ``"now"`` (dtf cancel), the child is ended at
    once. Either way no test not started runs, and those tests, with a test ended in
    flight, get no record (``BatchOutcome.stopped``).
    """
    if test_timeout <= 0:
        raise ValueError(f"test_timeout must be positive, got {test_timeout}")
    batch = _BatchRun(
        invocation_dir=Path(invocation_dir).resolve(),
        args=None if args is None else list(args),
        files=dict(files or {}),
        method=_resolve_start_method(start_method, python),
        python=python,
        extra_args=extra_args,
        env=env,
        test_timeout=test_timeout,
        poll_interval=poll_interval,
        on_record=on_record,
        recovery=recovery or RecoveryHooks(),
        memory_limit_mb=memory_limit_mb,
        on_flush=on_flush,
        handoff=handoff,
        stop=stop,
    )
    return batch.run(list(dict.fromkeys(nodeids)), reruns)


@dataclass
class _Unit:
    """Ids that one child runs, and how."""

    nodeids: list[str]
    spawn: bool = False
    attempt: int = 1
    #: the decision this unit carries out, resolved when the unit has run
    decision: Decision | None = None


class _BatchRun:
    """The children of one batch, and what recovery decides when one of them breaks."""

    def __init__(self, *, invocation_dir, args, files, method, python, extra_args, env,
                 test_timeout, poll_interval, on_record, recovery, memory_limit_mb,
                 on_flush=None, handoff=None, stop=None) -> None:  # fmt: skip
        self.invocation_dir = invocation_dir
        self.args = args
        self.files = files
        self.method = method
        self.python = python
        self.extra_args = extra_args
        self.env = env
        # The tests see the worker's environment less dtf's own; dtf's settings (the
        # rewrite cache's) are read from all of it.
        self.child_env = child_env(os.environ, env)
        self.cache_args = rewrite_cache_args({**os.environ, **(env or {})})
        self.test_timeout = test_timeout
        self.poll_interval = poll_interval
        self.on_record = on_record
        self.on_flush = on_flush
        #: while a child's lines are read, records are flushed once at the end
        self.grouping = False
        self.recovery = recovery
        self.memory_limit_mb = memory_limit_mb
        self.counts: Counter[str] = Counter()
        self.exit_codes: list[int] = []
        self.methods: list[str] = []
        self.startup_s = 0.0
        self.deferred: list[str] = []
        self.deferred_classes: dict[str, str] = {}
        self.incidents = 0
        self.retries: Counter[str] = Counter()
        self.failed_once: dict[str, int] = {}  # rerun candidates: nodeid -> attempt
        self.handoff: Handoff | None = handoff
        self.handed_off: list[str] = []
        self.stop: Callable[[], str | None] | None = stop
        self.stopped: list[str] = []

    def file_of(self, nodeid: str) -> str:
        return self.files.get(nodeid) or _file_of(nodeid)

    def emit(self, record: TestRecord) -> None:
        self.counts[record.outcome] += 1
        self.on_record(record)
        if not self.grouping and self.on_flush is not None:
            self.on_flush()

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """Records emitted inside are flushed together when it ends."""
        self.grouping = True
        try:
            yield
        finally:
            self.grouping = False
            if self.on_flush is not None:
                self.on_flush()

    def run(self, nodeids: list[str], reruns: int) -> BatchOutcome:
        pending = _drop_missing_files(nodeids, self.file_of, self.invocation_dir, self.emit)
        if pending and self._stopping():  # stopped before this batch began: it runs nothing
            self.stopped += pending
            pending = []
        if self.handoff is not None and len(pending) > 1:
            pending = self._hand_off_at_start(pending)
        units = [_Unit(pending)] if pending else []
        with tempfile.TemporaryDirectory(prefix="dtf-batch-") as tmp:
            self.tmp = Path(tmp)
            self._drain_units(units)
            for attempt in range(2, reruns + 2):
                again = [n for n, a in self.failed_once.items() if a == attempt - 1]
                if not again or self._stopping():
                    break
                self._drain_units([_Unit(again, attempt=attempt)])
        logger.debug(
            "batch of %d ids: %d children (%s), start-up %.3fs",
            len(nodeids),
            len(self.exit_codes),
            ", ".join(self.methods),
            self.startup_s,
        )
        return BatchOutcome(
            counts=dict(self.counts),
            children=len(self.exit_codes),
            exit_codes=self.exit_codes,
            startup_s=self.startup_s,
            start_methods=self.methods,
            deferred=self.deferred,
            deferred_classes=self.deferred_classes,
            incidents=self.incidents,
            handed_off=self.handed_off,
            stopped=self.stopped,
        )

    def _stopping(self) -> str | None:
        try:
            return self.stop() if self.stop is not None else None
        except Exception:
            logger.exception("could not tell whether the task stopped; the batch goes on")
            return None

    def _hand_off_at_start(self, nodeids: list[str]) -> list[str]:
        """A slot is idle already: hand it its share before a child collects them all."""
        try:
            first = self.handoff.first_to_hand(nodeids, {}, 0.0) if self.handoff.wanted() else None
            if first not in nodeids[1:]:
                return nodeids
            cut = nodeids.index(first)
            self.handoff.hand(nodeids[cut:])
        except Exception:
            logger.exception("could not hand tests to another worker; the batch keeps them")
            return nodeids
        self.handed_off += nodeids[cut:]
        return nodeids[:cut]

    def _drain_units(self, units: list[_Unit]) -> None:
        while units:
            unit = units.pop(0)
            if self._stopping():
                self.stopped += unit.nodeids
                continue
            units[:0] = self._run_unit(unit)

    def _run_unit(self, unit: _Unit) -> list[_Unit]:
        """Run one child over ``unit``; returns the units that must run next."""
        workdir = self.tmp / f"child-{len(self.exit_codes) + 1}"
        workdir.mkdir()
        child = _ChildRun(
            unit.nodeids, self.invocation_dir, workdir, self.python,
            self._pytest_args(unit.nodeids), self.child_env, cache_args=self.cache_args,
            files=None if self.args is None else self._files(unit.nodeids),
            memory_limit_mb=self.memory_limit_mb, grouped=self.grouped,
            handoff=self.handoff if unit.attempt == 1 and unit.decision is None else None,
            stop=self._stopping if self.stop is not None else None,
        )  # fmt: skip
        method = (
            "spawn" if unit.spawn else _method_for_child(self.method, self.env, self.invocation_dir)
        )
        memory_errors: dict[str, TestRecord] = {}

        def emit(record: TestRecord) -> None:
            if unit.attempt > 1:
                record = _as_rerun(record, unit.attempt)
            if (
                self.memory_limit_mb
                and record.outcome in ("failed", "error")
                and fc.is_memory_error(record.longrepr)
            ):
                memory_errors[record.nodeid] = record  # decided on below, not a test failure
                return
            if unit.attempt <= 1 and record.outcome in ("failed", "error"):
                self.failed_once.setdefault(record.nodeid, 1)
            elif unit.attempt > 1 and record.outcome in ("failed", "error"):
                self.failed_once[record.nodeid] = unit.attempt
            self.emit(record)

        timeout = self.test_timeout
        oom_kills = fc.OomKills()
        result = child.run(method, timeout, self.poll_interval, emit)
        result.oom_killed = oom_kills.rose()
        if not self.exit_codes:
            self.startup_s = result.startup_s
        self.exit_codes.append(result.exit_code)
        self.methods.append(result.method)
        follow: list[_Unit] = []
        culprit = result.culprit
        if culprit is not None:
            follow += self._on_culprit(culprit, result, timeout)
        for nodeid, record in memory_errors.items():
            detail = record.longrepr or ""
            incident = Incident(fc.OOM, nodeid, [nodeid], detail, self.retries[nodeid])
            follow += self._incident(incident, result, timeout, isolated=_isolated(record, fc.OOM))
        # Ids that started are never run again by this child's successors, so every
        # new child makes progress.
        handed = set(result.handed_off) | set(result.stopped)
        left = [n for n in unit.nodeids if n not in result.started and n not in handed]
        if unit.decision is not None:
            broke_again = (
                culprit in unit.nodeids
                or bool(set(memory_errors) & set(unit.nodeids))
                or (bool(left) and not result.restart and _died_outside_tests(result))
            )
            self.recovery.resolved(unit.decision, not broke_again)
        stopped = set(result.stopped)
        for nodeid in unit.nodeids:
            if (
                nodeid in result.started
                and nodeid not in result.reported
                and nodeid != culprit
                and nodeid not in stopped
            ):
                self.emit(_not_run(nodeid, result))
        self.handed_off += result.handed_off
        self.stopped += result.stopped
        if not left:
            return follow
        if result.restart:
            return [*follow, _Unit(left, attempt=unit.attempt)]
        return [*follow, *self._on_rest(left, result, unit)]

    def _files(self, nodeids: list[str]) -> list[str]:
        return list(dict.fromkeys(self.file_of(n) for n in nodeids))

    def _pytest_args(self, nodeids: list[str]) -> list[str]:
        """The options added to every child, then the run's own arguments (default: the
        files of ``nodeids``)."""
        return [*self.extra_args, *(self._files(nodeids) if self.args is None else self.args)]

    def _on_culprit(self, nodeid: str, result: _ChildResult, timeout: float) -> list[_Unit]:
        failure = self._classify(result)
        detail = _exit_note(failure, result) + result.culprit_detail
        record = TestRecord(
            nodeid=nodeid,
            outcome=fc.ISOLATED_OUTCOME[failure],
            when="run",
            duration=result.culprit_duration,
            longrepr=bounded(detail),
        )
        incident = Incident(failure, nodeid, [nodeid], detail, self.retries[nodeid])
        return self._incident(incident, result, timeout, isolated=record)

    def _incident(
        self, incident: Incident, result: _ChildResult, timeout: float, *, isolated: TestRecord
    ) -> list[_Unit]:
        self.incidents += 1
        decision = self.recovery.decide(incident)
        nodeid = incident.nodeid
        if decision.action == "retry" and nodeid is not None:
            self.retries[nodeid] += 1
            if decision.delay > 0:
                time.sleep(decision.delay)
            return [
                _Unit(
                    [nodeid],
                    spawn=decision.spawn,
                    decision=decision,
                )
            ]
        if decision.action == "defer":
            self.deferred.append(nodeid)
            self.deferred_classes[nodeid] = incident.failure_class
        elif decision.action == "give_up":
            self.emit(_infra_error(nodeid, incident.detail))
        else:  # isolate (and anything a hook got wrong: never lose the result)
            self.emit(isolated)
        self.recovery.resolved(decision, decision.action != "give_up")
        return []

    def _on_rest(self, left: list[str], result: _ChildResult, unit: _Unit) -> list[_Unit]:
        """The child ended with ids not started and no culprit: collection errors on this
        worker (env_broken), or a crash outside any test (culprit unknown)."""
        broken_env = [n for n in left if result.collect_error_of(n) is not None]
        rest = [n for n in left if n not in broken_env]
        follow: list[_Unit] = []
        if broken_env:
            self.incidents += 1
            detail = "\n".join(dict.fromkeys(result.not_run_reason(n) for n in broken_env))
            decision = self.recovery.decide(
                Incident(fc.ENV_BROKEN, None, broken_env, bounded(detail) or "")
            )
            self._settle(broken_env, decision, result, fc.ENV_BROKEN)
        # A child dtf killed outside any test (the stall timeout) leaves its tests not run;
        # one that died on its own or was killed from outside is recovered.
        if rest and _died_outside_tests(result):
            failure = self._classify(result)
            self.incidents += 1
            reason = _exit_note(failure, result) + result.reason
            decision = self.recovery.decide(Incident(failure, None, rest, bounded(reason) or ""))
            if decision.action == "retry":  # killed from outside: the same tests again
                if decision.delay > 0:
                    time.sleep(decision.delay)
                return [
                    *follow,
                    _Unit(
                        rest,
                        spawn=decision.spawn,
                        attempt=unit.attempt,
                        decision=decision,
                    ),
                ]
            if decision.action != "bisect":
                self._settle(rest, decision, result, failure)
                return follow
            self.recovery.resolved(decision, True)
            if len(rest) > 1:
                half = len(rest) // 2
                return [
                    *follow,
                    _Unit(rest[:half], attempt=unit.attempt),
                    _Unit(rest[half:], attempt=unit.attempt),
                ]
            self.emit(
                TestRecord(
                    nodeid=rest[0],
                    outcome=fc.ISOLATED_OUTCOME[failure],
                    when="run",
                    longrepr=bounded(f"isolated by bisecting: {result.reason}"),
                )
            )
            return follow
        for nodeid in rest:
            self.emit(_not_run(nodeid, result))
        return follow

    def _classify(self, result: _ChildResult) -> str:
        """The failure class of a child that died or that dtf killed (``killed_for``)."""
        return fc.classify_child_exit(
            result.exit_code,
            _tail(result.stderr_path),
            killed_by_us=bool(result.killed_for),
            memory_limited=bool(self.memory_limit_mb),
            oom_killed=result.oom_killed,
        )

    def _settle(
        self, nodeids: list[str], decision: Decision, result: _ChildResult, failure: str
    ) -> None:
        for nodeid in nodeids:
            if decision.action == "defer":
                self.deferred.append(nodeid)
                self.deferred_classes[nodeid] = failure
            elif decision.action == "give_up":
                self.emit(_infra_error(nodeid, result.not_run_reason(nodeid)))
            else:
                self.emit(_not_run(nodeid, result))
        self.recovery.resolved(decision, decision.action != "give_up")


def _died_outside_tests(result: _ChildResult) -> bool:
    """The child ended by a signal or an exit code of its own (pytest's are 0..5), and not
    because dtf killed it."""
    return (result.exit_code < 0 or result.exit_code > 5) and not result.killed_for


def _exit_note(failure: str, result: _ChildResult) -> str:
    """A first line saying who ended the child, where its exit code alone does not."""
    if failure == fc.KILLED:
        return (
            "killed from outside, not by dtf (an operator's kill, a shutdown, or the "
            "kernel's OOM killer where its count of OOM kills cannot be read)\n"
        )
    if failure == fc.OOM and result.oom_killed and result.exit_code == -signal.SIGKILL:
        return "killed by the kernel's OOM killer (its count of OOM kills rose meanwhile)\n"
    return ""


def _as_rerun(record: TestRecord, attempt: int) -> TestRecord:
    """A record of a rerun: attempt ``attempt``; a pass after failing is ``flaky``."""
    outcome = "flaky" if record.outcome == "passed" and record.when != "teardown" else None
    return dataclasses.replace(record, attempt=attempt, outcome=outcome or record.outcome)


def _isolated(record: TestRecord, failure: str) -> TestRecord:
    return dataclasses.replace(record, outcome=fc.ISOLATED_OUTCOME[failure], when="run")


def _infra_error(nodeid: str | None, detail: str) -> TestRecord:
    return TestRecord(
        nodeid=nodeid or "",
        outcome="infra_error",
        when="run",
        longrepr=bounded(f"recovery gave up on this test (level 5, critical): {detail}"),
    )


_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: object) -> None:
    if key in _warned:
        logger.debug(message, *args)
    else:
        _warned.add(key)
        logger.warning(message, *args)


def _resolve_start_method(requested: str | None, python: str) -> str:
    if requested is not None and requested not in START_METHODS:
        raise ValueError(f"start_method must be one of {START_METHODS}, got {requested!r}")
    method = requested
    if method is None:
        configured = os.environ.get(START_METHOD_ENV, "").strip().lower()
        if configured in START_METHODS:
            method = configured
        elif configured:
            _warn_once(
                "env",
                "ignoring %s=%r: expected one of %s",
                START_METHOD_ENV,
                configured,
                START_METHODS,
            )
    if method is None:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
    if method == "fork" and python != sys.executable:
        if requested == "fork":
            _warn_once(
                "python", "spawning pytest children: python=%s is not this interpreter", python
            )
        return "spawn"
    return method


def _method_for_child(method: str, env: Mapping[str, str] | None, rootdir: Path) -> str:
    """``method``, unless it is "fork" and forking this process now is not safe."""
    if method != "fork":
        return method
    reason = warm.fork_unsafe_reason(env, rootdir)
    if reason is None:
        return "fork"
    _warn_once("fork", "spawning pytest children instead of forking them: %s", reason)
    return "spawn"


def _drop_missing_files(
    nodeids: list[str],
    file_of: Callable[[str], str],
    invocation_dir: Path,
    emit: Callable[[TestRecord], None],
) -> list[str]:
    """Report ids whose file is missing here; pytest would refuse the whole batch for them."""
    kept = []
    for nodeid in nodeids:
        path = file_of(nodeid)
        if (invocation_dir / path).exists():
            kept.append(nodeid)
        else:
            emit(
                TestRecord(
                    nodeid=nodeid,
                    outcome="error",
                    when="run",
                    longrepr=f"file not found on this worker: {path} (in {invocation_dir})",
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
    startup_s: float = 0.0
    method: str = "spawn"
    started: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    collect_errors: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    #: "timeout" | "stall" | "cancel" when the runner killed the child, else ""
    killed_for: str = ""
    #: the kernel's count of OOM kills rose while the child ran (fc.OomKills)
    oom_killed: bool = False
    #: the test in flight when the child died or was killed, and what happened to it
    culprit: str | None = None
    culprit_detail: str = ""
    culprit_duration: float = 0.0
    stderr_path: Path | None = None
    #: ids the child dropped because the runner handed them to another worker
    handed_off: list[str] = field(default_factory=list)
    #: ids the child dropped because the batch's task stopped (-x / --maxfail)
    stopped: list[str] = field(default_factory=list)

    def collect_error_of(self, nodeid: str) -> str | None:
        """The collector whose collection error covers ``nodeid``, if any."""
        for collector in self.collect_errors:
            if (
                nodeid == collector
                or nodeid.startswith(collector + "::")
                or (collector and nodeid.startswith(collector.rstrip("/") + "/"))
            ):
                return collector
        return None

    def not_run_reason(self, nodeid: str) -> str:
        """Why ``nodeid`` has no result: its module's collection error if known."""
        collector = self.collect_error_of(nodeid)
        if collector is not None:
            longrepr = self.collect_errors[collector]
            return f"collection of {collector} failed on this worker:\n{longrepr}"
        if nodeid in self.started:
            return f"test started but pytest reported no result for it; {self.reason}"
        return f"test did not run; {self.reason}"


class _ChildRun:
    """One pytest child process over a list of ids, and the tail of its event file."""

    def __init__(
        self,
        nodeids: list[str],
        invocation_dir: Path,
        workdir: Path,
        python: str,
        args: Sequence[str],
        env: dict[str, str],
        *,
        memory_limit_mb: float | None = None,
        grouped: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        handoff: Handoff | None = None,
        files: Sequence[str] | None = None,
        stop: Callable[[], str | None] | None = None,
        cache_args: Sequence[str] = (),
    ) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.grouped = grouped
        self.handoff = handoff
        self.stop = stop
        #: the child was asked to drop its tests not started: for a handoff or a stop
        self.asked_for = ""
        self.handoff_file = workdir / "handoff.json"
        self.handoff_asked = False
        self.handoff_checked = 0.0
        #: seconds of each test this child finished (its phases summed)
        self.measured: dict[str, float] = {}
        self.nodeids = nodeids
        self.wanted = set(nodeids)
        self.select = workdir / "select.jsonl"
        self.events = workdir / "events.jsonl"
        self.stdout = workdir / "stdout.txt"
        self.stderr = workdir / "stderr.txt"
        self.select.write_text("".join(json.dumps(n) + "\n" for n in nodeids), encoding="utf-8")
        self.events.touch()
        only_files: list[str] = []
        if files is not None:
            listed = workdir / "files.jsonl"
            listed.write_text("".join(json.dumps(f) + "\n" for f in files), encoding="utf-8")
            only_files = [f"--dtf-files={listed}"]
        # Arguments after the plugin's "-p": the same for both start methods.
        # dtf's own options are written --opt=value: pytest takes every word that does
        # not start with "-" for a path when it looks for the rootdir and ini file.
        self.pytest_args = [
            f"--dtf-select={self.select}",
            f"--dtf-events={self.events}",
            "-p",
            "no:cacheprovider",
            "-q",
            "--continue-on-collection-errors",
            *([f"--dtf-handoff={self.handoff_file}"] if handoff or stop else []),
            *cache_args,
            *only_files,
            *args,
        ]
        self.cmd = python_module_command(
            PYTEST_MAIN, "-p", "dtf.pytest_plugin", *self.pytest_args, python=python, keep_cwd=True
        )
        self.invocation_dir = invocation_dir
        self.env = env
        self.result = _ChildResult(exit_code=0, restart=False, stderr_path=self.stderr)
        #: the test's own timeout, when this child runs with another (a longer retry)
        self.in_flight: str | None = None
        self.starts = 0
        self.test_started = 0.0
        self._offset = 0
        self._partial = b""

    def run(
        self,
        method: str,
        test_timeout: float,
        poll_interval: float,
        emit: Callable[[TestRecord], None],
    ) -> _ChildResult:
        self.launched = time.monotonic()
        proc = self._start(method)
        with reaper.watching(proc.pid):
            try:
                return self._watch(proc, test_timeout, poll_interval, emit)
            finally:
                # What the tests left running in the child's process group or session
                # ends with it (daemons that left both: reaper.ending_orphans).
                _kill_group(proc, signal.SIGKILL)
                reaper.kill_session(proc.pid)
                proc.wait()

    def _start(self, method: str) -> Child:
        self.result.method = method
        if method == "fork":
            import dtf.pytest_plugin

            # Made here so that their tails can be read even if the child dies at once.
            self.stdout.touch()
            self.stderr.touch()
            try:
                # The same arguments as the spawned child's; the plugin is passed as a
                # module because "-p" would warn that it was imported before pytest started.
                return warm.fork_pytest(
                    self.pytest_args,
                    plugins=[dtf.pytest_plugin],
                    rootdir=self.invocation_dir,
                    env=self.env,
                    stdout=self.stdout,
                    stderr=self.stderr,
                    memory_limit_mb=self.memory_limit_mb,
                )
            except OSError as exc:  # e.g. EAGAIN/ENOMEM from fork itself
                _warn_once("fork-failed", "could not fork a pytest child, spawning: %s", exc)
                self.result.method = "spawn"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            return subprocess.Popen(
                self.cmd,
                cwd=self.invocation_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=functools.partial(_child_setup, self.memory_limit_mb),
            )

    def _watch(
        self,
        proc: Child,
        test_timeout: float,
        poll_interval: float,
        emit: Callable[[TestRecord], None],
    ) -> _ChildResult:
        with _ExitWaiter(proc.pid) as waiter:
            return self._watch_loop(proc, waiter, test_timeout, poll_interval, emit)

    def _watch_loop(
        self,
        proc: Child,
        waiter: _ExitWaiter,
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
            how = self.stop() if self.stop is not None else None
            if how == "now":
                killed_for = "cancel"
                _terminate(proc)
                self._drain(emit)
                break
            if how and self.starts and not self.handoff_asked:
                self._ask_to_drop(self._pending()[:1], "stop")
            if self.handoff is not None and self.starts:
                self._maybe_hand_off(now)
            if self.starts or now - self.launched > STARTUP_POLL_WINDOW:
                waiter.sleep(poll_interval)
            else:
                waiter.sleep(min(poll_interval, STARTUP_POLL_INTERVAL))
        code = proc.wait()
        if not self.result.startup_s:
            self.result.startup_s = time.monotonic() - self.launched
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
        result.killed_for = killed_for
        if killed_for == "cancel":
            # Its run was cancelled: the test in flight and those after it get no result.
            result.stopped += [n for n in self.nodeids if n in self.wanted and n not in
                               result.reported]  # fmt: skip
            result.reason = "pytest child ended: its run was cancelled"
            return result
        nodeid = self.in_flight
        elapsed = time.monotonic() - self.test_started
        if nodeid is not None:
            # The batch decides what becomes of it (recovery); nothing is emitted here.
            result.culprit = nodeid
            result.culprit_duration = elapsed
            if killed_for == "timeout":
                result.culprit_detail = f"test exceeded its timeout of {test_timeout:g}s"
            else:
                result.culprit_detail = (
                    f"pytest child {_describe_exit(code)} while this test was "
                    f"running\n--- stderr (tail) ---\n{_tail(self.stderr)}"
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

    def _maybe_hand_off(self, now: float) -> None:
        """Ask the child to drop its last tests when another worker slot is idle."""
        if self.handoff_asked or now - self.handoff_checked < HANDOFF_CHECK_S:
            return
        self.handoff_checked = now
        pending = self._pending()
        try:
            wanted = bool(pending) and self.handoff.wanted()
            first = (
                self.handoff.first_to_hand(pending, self.measured, self.result.startup_s)
                if wanted
                else None
            )
        except Exception:
            logger.exception("handoff check failed; the batch keeps its tests")
            self.handoff = None
            return
        if first is None or first not in pending:
            return
        self._ask_to_drop([first], "handoff")

    def _pending(self) -> list[str]:
        """Ids not started, not handed off or stopped yet (self.wanted), in run order."""
        return [n for n in self.nodeids if n in self.wanted and n not in self.result.started]

    def _ask_to_drop(self, first: list[str], why: str) -> None:
        """Ask the child to drop ``first`` and every test after it (if none started)."""
        if not first:
            return
        tmp = self.handoff_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"first": first[0]}), encoding="utf-8")
        os.replace(tmp, self.handoff_file)
        self.handoff_asked = True
        self.asked_for = why

    def _on_handoff(self, first: str | None) -> None:
        """The child's answer: it dropped ``first`` and the tests after it, or nothing."""
        self.handoff_asked = False
        if first is None or first not in self.wanted:
            return
        handed = [n for n in self.nodeids[self.nodeids.index(first) :] if n in self.wanted]
        if self.asked_for == "stop":
            self.result.stopped += handed
            self.wanted -= set(handed)
            return
        try:
            self.handoff.hand(handed)
        except Exception:
            # The child dropped them all the same: a next child of this batch runs them.
            logger.exception("could not hand %d tests to another worker", len(handed))
            self.result.restart = True
            self.handoff = None
            return
        self.result.handed_off += handed
        self.wanted -= set(handed)

    def _drain(self, emit: Callable[[TestRecord], None]) -> bool:
        """Handle the complete event lines written since the last call; True if any."""
        with self.events.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        if not chunk:
            return False
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        with self.grouped():
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
        if kind == "handoff":
            self._on_handoff(event.get("first"))
            return
        if nodeid not in self.wanted:
            return
        if kind == "start":
            if not self.starts:
                self.result.startup_s = time.monotonic() - self.launched
            self.in_flight = nodeid
            self.starts += 1
            self.result.started.add(nodeid)
        elif kind == "finish":
            self.in_flight = None
        elif kind == "result":
            self.result.reported.add(nodeid)
            record = TestRecord.from_dict(event)
            self.measured[nodeid] = self.measured.get(nodeid, 0.0) + (record.duration or 0.0)
            emit(record)


class _ExitWaiter:
    """Sleeps that end early when the child exits (a pidfd, Linux 5.3+; else plain sleeps)."""

    def __init__(self, pid: int) -> None:
        self.poller = None
        self.fd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self.fd = os.pidfd_open(pid)
            self.poller = select.poll()
            self.poller.register(self.fd, select.POLLIN)

    def __enter__(self) -> _ExitWaiter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def sleep(self, seconds: float) -> None:
        if self.poller is None:
            time.sleep(seconds)
        else:
            self.poller.poll(seconds * 1000)


def _terminate(proc: Child) -> None:
    _kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)


def _kill_group(proc: Child, sig: int) -> None:
    # The group id is the child's pid (its own session); the kernel does not reuse it
    # while any member of the group is alive, so this cannot hit a stranger.
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        # A forked child may not have called setsid yet. Its pid is ours until reaped.
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, sig)
    except PermissionError:
        pass


def _child_setup(memory_limit_mb: float | None) -> None:
    """``preexec_fn`` of a spawned child: die with the worker, cap the address space."""
    die_with_parent()
    warm.limit_memory(memory_limit_mb)


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
        # Read a little more: faulthandler's list of extension modules, dropped
        # below, must not push the crash's own lines out of the tail.
        fh.seek(max(size - 4 * OUTPUT_TAIL_BYTES, 0))
        data = fh.read()
    text = data.decode("utf-8", errors="replace")
    text = _EXTENSION_MODULES.sub("", text).strip()
    if len(text) <= OUTPUT_TAIL_BYTES and size <= 4 * OUTPUT_TAIL_BYTES:
        return text
    return "..." + text[-OUTPUT_TAIL_BYTES:]


#: faulthandler's "Extension modules: numpy..., ... (total: N)" line after a crash.
_EXTENSION_MODULES = re.compile(r"^Extension modules: .*$\n?", re.MULTILINE)
