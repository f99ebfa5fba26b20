"""Stopping test tasks early: pytest's ``-x`` / ``--maxfail N``, and ``dtf cancel``.

A stopped task (``run_tasks.stop_reason``) runs nothing more: its batches not started
yet run nothing, and the tests never run get no result, as with pytest.

- ``-x`` / ``--maxfail N``: once the task's failing results reach N, running batches
  stop after their current test (as xdist does: what already runs finishes). The run
  ends ``failed``, not incomplete.
- ``dtf cancel``: every test task of the run is stopped and running batches end their
  pytest children at once (the test in flight gets no result). The run ends
  ``cancelled``; results already stored stay.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select, update

from dtf.db.models import Batch, Run, RunTask, TestItem
from dtf.db.session import session_scope
from dtf.summary import FAILING_OUTCOMES, TERMINAL_RUN_STATES

#: Seconds between two looks at whether a running batch's task was stopped.
STOP_CHECK_S = 0.5
#: What a running batch does once its task is stopped (TaskStop's answers).
AFTER_TEST = "after_test"
NOW = "now"


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


def cancel_run(db_url: str, run_id: str, reason: str) -> tuple[str, bool]:
    """Cancel a run: ``(status, ends_now)``. A run that has ended keeps its status
    (``ends_now`` False). A run none of whose batches runs right now ends at once;
    otherwise its running batches stop their children and the run ends ``cancelled``
    when they return."""
    from dtf.tasks.finalize import finalize

    with session_scope(db_url) as session:
        run = session.get(Run, run_id, with_for_update=True)
        if run is None:
            raise LookupError(run_id)
        if run.status in TERMINAL_RUN_STATES:
            return run.status, False
        run.cancel_reason = run.cancel_reason or reason
        session.execute(
            update(RunTask)
            .where(RunTask.run_id == run_id, RunTask.stop_reason.is_(None))
            .values(stop_reason=reason)
        )
        running = session.scalar(
            select(func.count()).select_from(Batch).filter_by(run_id=run_id, status="running")
        )
    if running:
        return "cancelling", False
    return finalize(db_url, run_id)["status"], True


class TaskStop:
    """``stop()`` for a running batch: None while its task goes on; AFTER_TEST once -x /
    --maxfail stopped it; NOW once its run was cancelled (looked up at most every
    STOP_CHECK_S; once stopped, always stopped)."""

    def __init__(self, db_url: str, task_id: int) -> None:
        self.db_url = db_url
        self.task_id = task_id
        self.checked = 0.0
        self.how: str | None = None

    def __call__(self) -> str | None:
        now = time.monotonic()
        if self.how != NOW and now - self.checked >= STOP_CHECK_S:
            self.checked = now
            self.how = self._look()
        return self.how

    def _look(self) -> str | None:
        with session_scope(self.db_url) as session:
            found = session.execute(
                select(RunTask.stop_reason, Run.cancel_reason)
                .join(Run, Run.id == RunTask.run_id)
                .where(RunTask.id == self.task_id)
            ).first()
        if found is None or found[0] is None:
            return None
        return NOW if found[1] else AFTER_TEST


def stop_reason(db_url: str, task_id: int) -> str | None:
    with session_scope(db_url) as session:
        return session.scalar(select(RunTask.stop_reason).filter_by(id=task_id))
