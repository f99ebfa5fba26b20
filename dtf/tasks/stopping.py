"""pytest's ``-x`` / ``--maxfail N`` for a whole test task, across its batches and workers.

Once the task's failing results reach N, the task is stopped (``run_tasks.stop_reason``):
its batches not started yet run nothing, running ones stop after their current test
(as xdist does: what already runs finishes), and the tests never run get no result,
as with pytest. The run then ends ``failed``, not incomplete.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select, update

from dtf.db.models import RunTask, TestItem
from dtf.db.session import session_scope
from dtf.summary import FAILING_OUTCOMES

#: Seconds between two looks at whether a running batch's task was stopped.
STOP_CHECK_S = 0.5


def stop_message(maxfail: int) -> str:
    option = "-x" if maxfail == 1 else f"--maxfail {maxfail}"
    return f"stopped after {maxfail} failing test{'s' if maxfail > 1 else ''} ({option})"


def stop_if_reached(db_url: str, task_id: int, maxfail: int) -> bool:
    """Stop the task when it has ``maxfail`` failing tests; True if it is stopped."""
    with session_scope(db_url) as session:
        failing = session.scalar(
            select(func.count())
            .select_from(TestItem)
            .filter_by(task_id=task_id)
            .where(TestItem.outcome.in_(FAILING_OUTCOMES))
        )
        if failing < maxfail:
            return False
        session.execute(
            update(RunTask)
            .where(RunTask.id == task_id, RunTask.stop_reason.is_(None))
            .values(stop_reason=stop_message(maxfail))
        )
    return True


def stop_reason(db_url: str, task_id: int) -> str | None:
    with session_scope(db_url) as session:
        return session.scalar(select(RunTask.stop_reason).filter_by(id=task_id))


class TaskStop:
    """``stop()`` for a running batch: has its task been stopped? (looked up at most every
    STOP_CHECK_S; once stopped, always stopped)."""

    def __init__(self, db_url: str, task_id: int) -> None:
        self.db_url = db_url
        self.task_id = task_id
        self.checked = 0.0
        self.stopped = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.stopped and now - self.checked >= STOP_CHECK_S:
            self.checked = now
            self.stopped = stop_reason(self.db_url, self.task_id) is not None
        return self.stopped
