"""The chord callback: persist a run's final state once every batch returned."""

from __future__ import annotations

import logging

from celery import shared_task

from dtf.config import load_settings
from dtf.db.models import Run, utcnow
from dtf.db.session import session_scope
from dtf.scheduling.durations import record_run
from dtf.summary import TERMINAL_RUN_STATES, summarize

logger = logging.getLogger(__name__)


@shared_task(name="dtf.finalize_run")
def finalize_run(header_results: list[dict], run_id: str) -> dict:
    """Set the run's status from what its batches stored; runs exactly once per run."""
    return finalize(load_settings().database_url, run_id)


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
        if missing > 0 and not run.error:
            run.error = (
                f"{missing} of {summary.total} tests have no result: their batches were "
                "taken by no worker of this database (another dtf deployment on the same "
                "broker?) or lost"
            )
        run.status = summary.verdict()
        run.finished_at = utcnow()
        run.started_at = run.started_at or run.finished_at
        status = run.status
    return {"run_id": run_id, "status": status, "counts": summary.counts}
