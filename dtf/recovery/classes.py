"""Infrastructure failure classes: what went wrong, as the worker and Celery saw it.

A test that fails is a result and is never recovered. These are the failures that are:

``crash``
    The pytest child died while a test ran (a signal such as SIGSEGV/SIGABRT, or an exit
    code from ``os._exit``). The test in flight is the culprit; when none was (a crash in
    collection or a session hook), the culprit is unknown and the batch is bisected.
``hang``
    A test ran past its timeout (the child is killed), or the child made no progress
    outside any test for the stall timeout, or Celery's time limit ended the whole batch.
``oom``
    The child ran out of memory: ``MemoryError`` under the task's ``memory_limit_mb``
    (RLIMIT_AS on the child), in the test's report or in the stderr of a child that died
    of it. (A SIGKILL from the kernel's OOM killer cannot be told from any other SIGKILL:
    it is a ``crash``; the memory limit is what turns it into a clear ``oom``.)
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

from dtf.errors import InfrastructureError

CRASH = "crash"
HANG = "hang"
OOM = "oom"
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
    WORKER_LOST,
    ENV_BROKEN,
    BUNDLE_UNAVAILABLE,
    DB_UNREACHABLE,
    BROKER_UNREACHABLE,
    BATCH_ERROR,
)

#: Failures of one test inside a batch, where the culprit is known (or found by bisecting).
TEST_CLASSES = frozenset({CRASH, HANG, OOM})

#: The outcome a test ends with when recovery isolates it as the culprit.
ISOLATED_OUTCOME = {CRASH: "crashed", HANG: "timed_out", OOM: "out_of_memory"}

_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


def classify_child_exit(
    exit_code: int, stderr_tail: str, *, killed_by_us: bool, memory_limited: bool
) -> str:
    """The class of a pytest child that died under a test: ``oom`` or ``crash``.

    ``exit_code`` is negative for a signal (as subprocess reports it).
    """
    if any(marker in stderr_tail for marker in _MEMORY_MARKERS):
        return OOM
    if memory_limited and exit_code == -signal.SIGABRT and "alloc" in stderr_tail.lower():
        return OOM
    return CRASH


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
