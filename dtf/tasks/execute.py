"""Header tasks of a run's chord: ``execute_batch`` and ``execute_command``.

Both never raise: a batch that broke returns a result saying so, so that the
chord's ``finalize_run`` always runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import shared_task

from dtf.config import load_settings
from dtf.db.models import Run, RunTask, utcnow
from dtf.db.session import session_scope
from dtf.executor.command_runner import run_command
from dtf.executor.exclusive import takes_a_worker_slot
from dtf.executor.pytest_runner import run_pytest_batch
from dtf.plugins import worker as plugin_hooks
from dtf.tasks import store

logger = logging.getLogger(__name__)


def code_dir(db_url: str, bundle: str | None, workdir: str) -> Path:
    """Where the code runs: ``workdir`` as is, or inside the fetched bundle."""
    if bundle is None:
        return Path(workdir)
    from dtf.bundles import fetch

    return fetch(db_url, bundle, load_settings().home / "bundles") / workdir


@shared_task(bind=True, name="dtf.execute_batch")
@takes_a_worker_slot
def execute_batch(self, batch_id: str) -> dict:
    """Run one batch of tests in a pytest child process, storing each result as it comes."""
    db_url = load_settings().database_url
    worker = self.request.hostname
    try:
        work = store.start_attempt(db_url, batch_id, worker)
    except Exception as exc:
        logger.exception("batch %s could not start", batch_id)
        return _broken(db_url, batch_id, None, exc)
    test_s = 0.0

    def on_record(record) -> None:
        nonlocal test_s
        test_s += record.duration
        if store.record_result(db_url, work, record, worker):
            plugin_hooks.test_finished(record, run_id=work.run_id, batch_id=batch_id, worker=worker)

    try:
        outcome = run_pytest_batch(
            list(work.items),
            code_dir(db_url, work.bundle, work.workdir),
            test_timeout=work.test_timeout,
            extra_args=work.pytest_args + plugin_hooks.pytest_args(batch_id, work),
            on_record=on_record,
        )
    except Exception as exc:
        logger.exception("batch %s broke", batch_id)
        return _broken(db_url, batch_id, work.attempt_id, exc)
    store.finish_attempt(
        db_url,
        batch_id,
        work.attempt_id,
        status="completed",
        children=outcome.children,
        exit_codes=outcome.exit_codes,
        startup_s=getattr(outcome, "startup_s", None),
        test_s=test_s,
    )
    return {"batch_id": batch_id, "status": "done", "counts": outcome.counts}


def _broken(db_url: str, batch_id: str, attempt_id: int | None, exc: Exception) -> dict:
    error = f"{type(exc).__name__}: {exc}"
    try:
        if attempt_id is None:
            store.mark_batch_broken(db_url, batch_id, error)
        else:
            store.finish_attempt(db_url, batch_id, attempt_id, status="broken", error=error)
    except Exception:
        logger.exception("could not record that batch %s broke", batch_id)
    return {"batch_id": batch_id, "status": "broken", "error": error}


@shared_task(bind=True, name="dtf.execute_command")
def execute_command(self, task_id: int) -> dict:
    """Run a ``command`` task's shell command and store its exit code and bounded output."""
    db_url = load_settings().database_url
    try:
        with session_scope(db_url) as session:
            task = session.get(RunTask, task_id)
            task.status = "running"
            task.worker = self.request.hostname
            task.started_at = utcnow()
            store._mark_run_started(session, task.run_id, task.started_at)
            spec, workdir, timeout = dict(task.spec), task.workdir, task.timeout
            bundle = session.get(Run, task.run_id).bundle
        result = run_command(
            spec["command"],
            cwd=str(code_dir(db_url, bundle, workdir)),
            env={**os.environ, **(spec.get("env") or {})},
            timeout=timeout,
        )
        with session_scope(db_url) as session:
            task = session.get(RunTask, task_id)
            task.status = "timed_out" if result.timed_out else "done"
            task.exit_code = result.exit_code
            task.output = result.output
            task.finished_at = utcnow()
        return {"task_id": task_id, "status": "done", "exit_code": result.exit_code}
    except Exception as exc:
        logger.exception("command task %s broke", task_id)
        error = f"{type(exc).__name__}: {exc}"
        try:
            with session_scope(db_url) as session:
                task = session.get(RunTask, task_id)
                task.status = "broken"
                task.output = error
                task.finished_at = utcnow()
        except Exception:
            logger.exception("could not record that command task %s broke", task_id)
        return {"task_id": task_id, "status": "broken", "error": error}
