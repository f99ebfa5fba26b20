"""Infrastructure failure classes: what went wrong, as the worker and Celery saw it.

A test that fails is a result and is never recovered. These are the failures that are:

``crash``
    The pytest child died while a test ran (a signal such as SIGSEGV/SIGABRT, or an exit
    code from ``os._exit``). The test in flight is the culprit; when none was (a crash in
    collection or a session hook), the culprit is unknown and the batch is bisected.
``hang``
    dtf killed the child: a test ran past its timeout, or the child made no progress
    outside any test for the stall timeout; or Celery's time limit ended the whole batch.
``oom``
    The child ran out of memory: ``MemoryError`` under the task's ``memory_limit_mb``
    (RLIMIT_AS on the child), in the test's report or in the stderr of a child that died
    of it; or the child died of a SIGKILL that dtf did not send while the kernel's count
    of OOM kills (:class:`OomKills`) rose: the kernel's OOM killer took it.
``killed``
    The child was killed from outside: SIGKILL, SIGTERM, SIGHUP or SIGINT that dtf did
    not send, and no OOM kill counted meanwhile (an operator's ``kill``, a shutdown, the
    OOM killer where its count cannot be read). The test in flight did not fault, so it
    is run again, then moved to another worker, never isolated as ``crashed``.
``worker_lost``
    The worker running a batch went away: its process was killed (Celery redelivers the
    message: an attempt that never finished is found when the batch starts again), or the
    whole worker stopped heartbeating (the reconciler sees it, docs/recovery.md).
``env_broken``
    The batch's modules fail to import on this worker although they collected fine when
    the run was planned (a missing package, a broken driver on that machine).
``bundle_unavailable``
    The code bundle could not be fetched or unpacked on the worker.
``db_unreachable`` / ``broker_unreachable``
    The database or the broker did not answer for a while.
``batch_error``
    Anything else that stopped ``execute_batch`` from finishing (an internal error).
"""

from __future__ import annotations

import signal
from pathlib import Path

from dtf.errors import InfrastructureError

CRASH = "crash"
HANG = "hang"
OOM = "oom"
KILLED = "killed"
WORKER_LOST = "worker_lost"
ENV_BROKEN = "env_broken"
BUNDLE_UNAVAILABLE = "bundle_unavailable"
DB_UNREACHABLE = "db_unreachable"
BROKER_UNREACHABLE = "broker_unreachable"
BATCH_ERROR = "batch_error"

FAILURE_CLASSES: tuple[str, ...] = (
    CRASH,
    HANG,
    OOM,
    KILLED,
    WORKER_LOST,
    ENV_BROKEN,
    BUNDLE_UNAVAILABLE,
    DB_UNREACHABLE,
    BROKER_UNREACHABLE,
    BATCH_ERROR,
)

#: Failures of one test inside a batch, where the culprit is known (or found by bisecting).
TEST_CLASSES = frozenset({CRASH, HANG, OOM, KILLED})

#: The outcome a test ends with when recovery isolates it as the culprit. The policy
#: never isolates a ``killed`` test; without a policy (or a database) it is reported as
#: the infrastructure's fault, not as a failure of the test.
ISOLATED_OUTCOME = {
    CRASH: "crashed",
    HANG: "timed_out",
    OOM: "out_of_memory",
    KILLED: "infra_error",
}

_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


#: Signals that end a child when someone sends them; a test's own fault raises others
#: (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, ...).
_KILL_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT})


def classify_child_exit(
    exit_code: int,
    stderr_tail: str,
    *,
    killed_by_us: bool,
    memory_limited: bool,
    oom_killed: bool = False,
) -> str:
    """The class of a pytest child that died under a test, or outside any test.

    ``exit_code`` is negative for a signal (as subprocess reports it). ``killed_by_us``:
    dtf killed the child because it stopped making progress (a test past its timeout,
    or the stall timeout outside any test): ``hang``, whatever else it printed.
    ``oom_killed``: the kernel's count of OOM kills rose while the child ran
    (:meth:`OomKills.rose`). Otherwise a signal dtf did not send that someone sends to
    end a process is ``killed`` (from outside), or ``oom`` when it is a SIGKILL and an
    OOM kill was counted; the marks of running out of memory under ``memory_limited``
    are ``oom``; anything else (SIGSEGV, SIGABRT, ``os._exit``) is a ``crash``.
    """
    if killed_by_us:
        return HANG
    if any(marker in stderr_tail for marker in _MEMORY_MARKERS):
        return OOM
    if memory_limited and exit_code == -signal.SIGABRT and "alloc" in stderr_tail.lower():
        return OOM
    if exit_code == -signal.SIGKILL and oom_killed:
        return OOM
    if exit_code < 0 and -exit_code in _KILL_SIGNALS:
        return KILLED
    return CRASH


class OomKills:
    """The kernel's count of OOM kills, read when made; :meth:`rose` says if it grew since.

    The count is the one of this process's memory cgroup (``memory.events`` in cgroup v2,
    ``memory.oom_control`` in v1: both count kills of the cgroup's processes by any OOM
    killer), else the whole system's (``/proc/vmstat``, Linux 4.13+). A child inherits
    the worker's cgroup. Where none can be read, :meth:`rose` is always False.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self.count = 0
        for path in _oom_counter_paths():
            count = _read_oom_kills(path)
            if count is not None:
                self.path, self.count = path, count
                return

    def rose(self) -> bool:
        if self.path is None:
            return False
        now = _read_oom_kills(self.path)
        return now is not None and now > self.count


def _oom_counter_paths() -> list[Path]:
    paths = []
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, cgroup = parts
        if controllers == "":  # cgroup v2: hierarchy 0, no controller list
            paths += [Path("/sys/fs/cgroup", cgroup.lstrip("/"), "memory.events")]
        elif "memory" in controllers.split(","):
            paths += [Path("/sys/fs/cgroup/memory", cgroup.lstrip("/"), "memory.oom_control")]
    paths.append(Path("/proc/vmstat"))
    return paths


def _read_oom_kills(path: Path) -> int | None:
    """The ``oom_kill N`` line of ``path`` (the three files write it alike)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def is_memory_error(longrepr: str | None) -> bool:
    """True when a test's failure report ends in a ``MemoryError``."""
    if not longrepr:
        return False
    lines = [line.strip() for line in longrepr.strip().splitlines() if line.strip()]
    tail = lines[-3:]
    return any(line.startswith("E   MemoryError") or "MemoryError" in line for line in tail)


def classify_exception(exc: BaseException) -> str:
    """The class of an exception that stopped a batch task (a failed bundle fetch is
    classified where it is fetched)."""
    from billiard.exceptions import WorkerLostError
    from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
    from kombu.exceptions import OperationalError as KombuOperationalError
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        return HANG
    if isinstance(exc, WorkerLostError):
        return WORKER_LOST
    if isinstance(exc, MemoryError):
        return OOM
    if isinstance(exc, KombuOperationalError):
        return BROKER_UNREACHABLE
    if isinstance(exc, (OperationalError, DBAPIError)):
        return DB_UNREACHABLE
    if isinstance(exc, InfrastructureError) and "database" in str(exc):
        return DB_UNREACHABLE
    return BATCH_ERROR
