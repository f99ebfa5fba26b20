"""Header task of a benchmark job: ``execute_benchmark`` measures one (hardware, batch size).

A job runs alone on its worker (the exclusive slot of dtf.executor.exclusive).
It never raises: a job that could not run marks its rows ``broken`` and
returns, so that the chord's ``finalize_run`` always runs.
"""

from __future__ import annotations

import logging

from celery import shared_task

from dtf.benchmarking import store
from dtf.benchmarking.runner import run_job
from dtf.config import load_settings
from dtf.executor.exclusive import worker_slot
from dtf.tasks.execute import code_dir

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="dtf.execute_benchmark")
def execute_benchmark(self, job_id: str) -> dict:
    """Measure a job's shapes in a child process and store each result with its comparison."""
    db_url = load_settings().database_url
    try:
        work = store.start_job(db_url, job_id, self.request.hostname)
        if work is None:
            return {"job": job_id, "status": "done", "counts": {}}  # a redelivery found it done
        cwd = code_dir(db_url, work.bundle, work.workdir)
        # Alone on its worker: another batch running beside it would skew the timings.
        with worker_slot(self.request.hostname or "worker", exclusive=True):
            outcome = run_job(
                {**work.job, "workdir": str(cwd)},
                cwd=str(cwd),
                timeout=work.timeout,
                max_retries=work.max_retries,
                retry_delay_s=work.retry_delay_s,
            )
        counts = store.record_job(db_url, work, outcome)
    except Exception as exc:
        logger.exception("benchmark job %s broke", job_id)
        error = f"{type(exc).__name__}: {exc}"
        try:
            store.mark_job_broken(db_url, job_id, error)
        except Exception:
            logger.exception("could not record that benchmark job %s broke", job_id)
        return {"job": job_id, "status": "broken", "error": error}
    return {"job": job_id, "status": "done", "counts": counts}
