"""The chord callback: persist a run's final state once every batch returned."""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy import func, select

from dtf.config import load_settings
from dtf.db.models import Batch, Run, utcnow
from dtf.db.session import session_scope
from dtf.scheduling.durations import record_run
from dtf.summary import TERMINAL_RUN_STATES, summarize

logger = logging.getLogger(__name__)


#: Seconds between looks at batches handed off by the chord's batches (dtf/tasks/handoff.py).
HANDED_OFF_POLL_S = 0.2
HANDED_OFF_PATIENT_TRIES = 150


@shared_task(bind=True, name="dtf.finalize_run", max_retries=None)
def finalize_run(self, header_results: list[dict], run_id: str) -> dict:
    """Set the run's status from what its batches stored; runs exactly once per run.

    The chord's batches have all returned; batches they handed their tails to (not in
    the chord) may still run: it waits for them, retrying itself.
    """
    db_url = load_settings().database_url
    if unfinished_batches(db_url, run_id):
        # Often for a while (they are tails, short by design), then every 5 s.
        late = self.request.retries >= HANDED_OFF_PATIENT_TRIES
        raise self.retry(countdown=5.0 if late else HANDED_OFF_POLL_S)
    return finalize(db_url, run_id)


def unfinished_batches(db_url: str, run_id: str) -> int:
    with session_scope(db_url) as session:
        return session.scalar(
            select(func.count())
            .select_from(Batch)
            .filter_by(run_id=run_id)
            .where(Batch.status.in_(("pending", "running")))
        )


def _end_batched_tasks(run: Run) -> None:
    """Test and benchmark tasks end with their run (command tasks record their own end):
    ``done``, ``stopped`` (-x / --maxfail) or ``cancelled``."""
    for task in run.tasks:
        if task.type != "command" and task.status in ("pending", "running"):
            task.status = (
                "cancelled" if run.cancel_reason else "stopped" if task.stop_reason else "done"
            )
            task.finished_at = task.finished_at or run.finished_at


def finalize(db_url: str, run_id: str) -> dict:
    """Finalize a run unless that was done already (the chord and the reconciler may both
    try: the run's row is locked and a finished run is left as it is)."""
    with session_scope(db_url) as session:
        locked = session.get(Run, run_id, with_for_update=True)
        if locked is not None and locked.status in TERMINAL_RUN_STATES:
            return {"run_id": run_id, "status": locked.status, "already": True}
        summary = summarize(session, run_id)
        try:
            # In a savepoint: the history is worth less than the verdict, but it
            # must be there as soon as the run shows as finished.
            with session.begin_nested():
                record_run(session, run_id)
        except Exception:
            logger.exception("could not update the duration history with run %s", run_id)
        run = session.get(Run, run_id)
        missing = summary.total - summary.finished
        if missing > 0 and not run.error and not summary.stopped:
            run.error = (
                f"{missing} of {summary.total} tests have no result: their batches were "
                "taken by no worker of this database (another dtf deployment on the same "
                "broker?) or lost"
            )
        run.status = summary.verdict()
        run.finished_at = utcnow()
        run.started_at = run.started_at or run.finished_at
        _end_batched_tasks(run)
        status = run.status
    return {"run_id": run_id, "status": status, "counts": summary.counts}
