"""Header tasks of a run's chord: ``execute_batch`` and ``execute_command``.

Neither lets an exception escape: a batch that broke is recovered (docs/recovery.md) by
Celery's own ``retry`` (same queue, another worker's queue, another hardware kind) or
``replace`` (two smaller batches), which keep the task's place in the chord, or it is
given up on at level 5 and returns a result saying so. Either way the chord's
``finalize_run`` runs exactly once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import group, shared_task
from celery.exceptions import Retry

from dtf.bundle_archive import BundleTooLarge, UnsafeBundle
from dtf.config import load_settings
from dtf.db.models import Run, RunTask, utcnow
from dtf.db.session import session_scope
from dtf.executor.command_runner import run_command
from dtf.executor.exclusive import takes_a_worker_slot
from dtf.executor.pytest_runner import START_METHOD_ENV, run_pytest_batch
from dtf.plugins import worker as plugin_hooks
from dtf.pytest_args import without_maxfail
from dtf.recovery import classes as fc
from dtf.recovery import engine
from dtf.recovery.resources import ResourceMeter
from dtf.tasks import store
from dtf.tasks.stopping import TaskStop

logger = logging.getLogger(__name__)

#: How long a batch keeps retrying a database that stopped answering before it hands
#: the batch to recovery (its results are buffered meanwhile).
DB_OUTAGE_PATIENCE_S = 120.0
#: Celery retries of a batch that cannot reach the database to record even its start.
DB_START_RETRIES = 20
#: Batches expected to run longer spawn their pytest child instead of forking it from
#: the worker (seconds). A fork saves ~0.3 s of start-up, which matters for short
#: batches only; and forked from a long-lived pool process, a child ran CPU- and
#: allocation-heavy tests (networkx) up to twice as slowly as a spawned one while
#: another slot was busy (measured: ~100k page faults a second in the forked child).
FORK_MAX_BATCH_S = 10.0


def code_dir(db_url: str, bundle: str | None, workdir: str) -> Path:
    """Where the code runs: ``workdir`` as is, or inside the fetched bundle."""
    if bundle is None:
        return Path(workdir)
    from dtf.bundles import fetch

    return fetch(db_url, bundle, load_settings().home / "bundles") / workdir


class BatchFailure(Exception):
    """A classified infrastructure failure of a whole batch."""

    def __init__(self, failure_class: str, detail: str) -> None:
        super().__init__(detail)
        self.failure_class = failure_class
        self.detail = detail


def _dispatch_options(request) -> dict:
    """The parts of this delivery's Celery request needed to send it again (reconciler)."""
    return {
        "chord": request.chord,
        "group_id": request.group,
        "group_index": request.group_index,
        "root_id": request.root_id,
        "parent_id": request.parent_id,
        "time_limit": (request.timelimit or (None, None))[0],
        "soft_time_limit": (request.timelimit or (None, None))[1],
        "priority": (request.delivery_info or {}).get("priority"),
    }


@shared_task(bind=True, name="dtf.execute_batch", max_retries=None)
@takes_a_worker_slot
def execute_batch(self, batch_id: str) -> dict:
    """Run one batch of tests in a pytest child process, storing each result as it comes."""
    db_url = load_settings().database_url
    worker = self.request.hostname
    meter = ResourceMeter()
    try:
        work = store.start_attempt(db_url, batch_id, worker, _dispatch_options(self.request))
    except Exception as exc:
        if fc.classify_exception(exc) == fc.DB_UNREACHABLE and self.request.retries < (
            DB_START_RETRIES
        ):
            logger.warning("batch %s: database unreachable, retrying: %s", batch_id, exc)
            raise self.retry(countdown=min(30, 1 + self.request.retries)) from None
        logger.exception("batch %s could not start", batch_id)
        return _broken(db_url, batch_id, None, exc)
    if work is None:
        return {"batch_id": batch_id, "status": "done", "duplicate": True}
    try:
        if work.interrupted:
            _on_redelivery(self, db_url, work, worker)
        return _run(self, db_url, work, worker, meter)
    except BatchFailure as failure:
        return _recover(self, db_url, work, worker, failure.failure_class, failure.detail)
    except Retry:
        raise
    except Exception as exc:
        logger.exception("batch %s broke", batch_id)
        detail = f"{type(exc).__name__}: {exc}"
        return _recover(self, db_url, work, worker, fc.classify_exception(exc), detail)


def _run(task, db_url: str, work: store.BatchWork, worker: str, meter: ResourceMeter) -> dict:
    try:
        root = code_dir(db_url, work.bundle, work.workdir)
    except (UnsafeBundle, BundleTooLarge) as exc:
        # The bundle itself is refused: every worker would refuse it, so no retry and no
        # quarantine of this (healthy) worker.
        reason = f"the code bundle is refused: {exc}"
        given_up = store.give_up(db_url, work.batch_id, work.attempt_id, reason)
        logger.error("batch %s: %s; gave up on %d tests", work.batch_id, reason, len(given_up))
        return {"batch_id": work.batch_id, "status": "broken", "error": reason}
    except Exception as exc:
        raise BatchFailure(fc.BUNDLE_UNAVAILABLE, f"{type(exc).__name__}: {exc}") from exc
    writer = store.ResultWriter(db_url, work, worker)
    exclusive = bool(task.request.kwargs and task.request.kwargs.get("exclusive"))
    outcome = run_pytest_batch(
        list(work.items),
        root,
        test_timeout=work.test_timeout,
        # The collection's own arguments: pytest then finds the same rootdir and node ids;
        # -x / --maxfail are the task's as a whole (stop), not each batch's.
        args=[*without_maxfail(work.pytest_args), *work.paths],
        files=work.files,
        extra_args=plugin_hooks.pytest_args(work.batch_id, work),
        on_record=writer.add,
        on_flush=writer.flush,
        recovery=engine.TestRecovery(db_url, work, worker),
        memory_limit_mb=work.memory_limit_mb,
        reruns=work.reruns,
        handoff=None if exclusive else _handoff(db_url, work, _message_priority(task)),
        start_method=_start_method(work),
        # -x / --maxfail, dtf cancel: also a batch of a task stopped before it began
        stop=TaskStop(db_url, work.task_id),
    )
    writer.close(DB_OUTAGE_PATIENCE_S)
    if outcome.deferred:
        raise _deferred(outcome, worker)
    store.finish_attempt(
        db_url,
        work.batch_id,
        work.attempt_id,
        status="completed",
        children=outcome.children,
        exit_codes=outcome.exit_codes,
        startup_s=getattr(outcome, "startup_s", None),
        test_s=writer.test_s,
    )
    engine.close_batch_events(db_url, work.batch_id, True, meter.stop())
    return {"batch_id": work.batch_id, "status": "done", "counts": outcome.counts}


def _deferred(outcome, worker: str) -> BatchFailure:
    """What the batch-level recovery gets for the tests the runner left to it: modules
    that fail to import here (``env_broken``), or tests whose child was killed from
    outside, retrying them here did not help (``killed``: moved to another worker, not
    split)."""
    deferred = outcome.deferred
    classes = getattr(outcome, "deferred_classes", None) or {}
    if all(classes.get(nodeid) == fc.KILLED for nodeid in deferred):
        return BatchFailure(
            fc.KILLED,
            f"the pytest child running {len(deferred)} tests was killed from outside "
            f"(not by dtf) on {worker}, e.g. during {deferred[0]}",
        )
    return BatchFailure(
        fc.ENV_BROKEN,
        f"{len(deferred)} tests' modules failed to import on {worker} "
        f"(they collected at planning), e.g. {deferred[0]}",
    )


def _start_method(work: store.BatchWork) -> str | None:
    """Spawn for long batches; else the runner's default (``$DTF_EXECUTOR``, or fork)."""
    if os.environ.get(START_METHOD_ENV, "").strip():
        return None  # the worker's operator chose
    return "spawn" if (work.estimated_s or 0.0) > FORK_MAX_BATCH_S else None


def _message_priority(task) -> int | None:
    """The priority the batch's message came with, in the broker's numbers."""
    return (task.request.delivery_info or {}).get("priority")


def _handoff(db_url: str, work: store.BatchWork, priority: int | None):
    """What lets this batch give its tail to an idle slot (None if it cannot be set up)."""
    from dtf.tasks.handoff import BatchHandoff, estimates_of, slots_of

    if os.environ.get("DTF_HANDOFF") == "0":
        return None
    try:
        return BatchHandoff(
            db_url, work, estimates_of(db_url, work), slots_of(db_url, work.queue), priority
        )
    except Exception:
        logger.exception("batch %s: runs without handing off its tail", work.batch_id)
        return None


def batch_signature(batch_id: str, queue: str, time_limit: float, **options):
    """The task of a batch made at run time (a half, a handed-off tail); ``time_limit``:
    its tests' timeouts, to which the batch's overhead is added as for planned ones."""
    from dtf.scheduling.canvas import BATCH_OVERHEAD_S, MAX_BATCH_TIME_LIMIT

    hard = min(time_limit + BATCH_OVERHEAD_S, MAX_BATCH_TIME_LIMIT)
    return execute_batch.si(batch_id).set(
        task_id=batch_id, queue=queue, time_limit=hard, soft_time_limit=hard - 30, **options
    )


def _on_redelivery(task, db_url: str, work: store.BatchWork, worker: str) -> None:
    """Celery delivered the batch again because the worker of an earlier attempt died."""
    lost = work.interrupted[-1]
    with session_scope(db_url) as session:
        from dtf.recovery.table import open_events

        already = [e for e in open_events(session, work.batch_id) if e.nodeid is None]
    if already:
        return  # the reconciler saw it first and sent this delivery
    plan = engine.plan_batch_recovery(
        db_url,
        work,
        fc.WORKER_LOST,
        f"worker {lost} died during attempt {len(work.interrupted)} (Celery redelivered)",
        failed_worker=lost,
        live=_live(db_url),
    )
    if plan.strategy == "retry_in_place" or (
        plan.strategy in ("reassign_worker", "quarantine_worker") and worker != lost
    ):
        if plan.strategy == "quarantine_worker":
            engine.quarantine(db_url, lost, f"lost during batch {work.batch_id}")
        return  # this delivery is the retry: go on here
    _execute_plan(task, db_url, work, worker, plan, fc.WORKER_LOST)


def _recover(task, db_url: str, work, worker: str, failure_class: str, detail: str) -> dict:
    try:
        plan = engine.plan_batch_recovery(
            db_url, work, failure_class, detail, failed_worker=worker, live=_live(db_url)
        )
        return _execute_plan(task, db_url, work, worker, plan, failure_class)
    except Retry:
        raise
    except Exception as exc:
        logger.exception("recovery of batch %s failed", work.batch_id)
        return _broken(db_url, work.batch_id, work.attempt_id, exc)


def _execute_plan(task, db_url: str, work, worker: str, plan, failure_class: str) -> dict:
    """Carry a batch-level strategy out; raises Celery's Retry/Ignore for a retry/replace."""
    logger.warning(
        "batch %s: %s -> %s (%s)", work.batch_id, failure_class, plan.strategy, plan.reason
    )
    if plan.strategy == "give_up":
        given_up = store.give_up(db_url, work.batch_id, work.attempt_id, plan.reason)
        engine.finish(db_url, plan.event_id, False, None)
        # dtf_task_failed fires from the task signal (dtf/plugins/worker.py) on this
        # "broken" result; the recovery_failed hook already named the class.
        logger.error("batch %s: gave up on %d tests", work.batch_id, len(given_up))
        return {"batch_id": work.batch_id, "status": "broken", "error": plan.reason}
    store.end_attempt_for_retry(db_url, work.attempt_id, failure_class, plan.reason)
    if plan.strategy == "quarantine_worker":
        engine.quarantine(db_url, worker, f"{failure_class}: {plan.reason}")
    if plan.strategy == "retry_smaller_batch":
        halves = store.split_batch(db_url, work.batch_id)
        raise task.replace(group(_half(task, *half) for half in halves))
    queue = plan.queue or work.queue
    if queue != work.queue:
        engine.move_batch(db_url, work.batch_id, queue, plan.hardware)
    raise task.retry(queue=queue, countdown=plan.delay)


def _half(task, batch_id: str, queue: str, time_limit: float):
    return batch_signature(batch_id, queue, time_limit, priority=_message_priority(task))


def _live(db_url: str) -> list:
    from dtf.submission import live_workers

    try:
        return live_workers(db_url)
    except Exception:
        logger.exception("could not read the live workers")
        return []


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


#: States of a command task that has run (or will never run).
COMMAND_ENDED = frozenset({"done", "timed_out", "cancelled", "broken"})


@shared_task(bind=True, name="dtf.execute_command")
def execute_command(self, task_id: int) -> dict:
    """Run a ``command`` task's shell command and store its exit code and bounded output."""
    db_url = load_settings().database_url
    try:
        with session_scope(db_url) as session:
            task = session.get(RunTask, task_id)
            if task.status in COMMAND_ENDED:
                # Delivered again (a replayed message): its result stays, it does not rerun.
                logger.warning("command task %s has ended (%s): not run again", task_id,
                               task.status)  # fmt: skip
                return {"task_id": task_id, "status": task.status}
            if task.stop_reason:  # its run was cancelled before the command began
                task.status, task.output, task.finished_at = "cancelled", task.stop_reason, utcnow()
                return {"task_id": task_id, "status": "cancelled"}
            task.status = "running"
            task.worker = self.request.hostname
            task.started_at = utcnow()
            store._mark_run_started(session, task.run_id, task.started_at)
            spec, workdir, timeout = dict(task.spec), task.workdir, task.timeout
            bundle = session.get(Run, task.run_id).bundle
        from dtf.executor.reaper import ending_orphans

        stop = TaskStop(db_url, task_id)
        with ending_orphans():  # a daemon the command left ends with the task
            result = run_command(
                spec["command"],
                cwd=str(code_dir(db_url, bundle, workdir)),
                # over the worker's environment less dtf's settings and secrets
                env=spec.get("env") or {},
                timeout=timeout,
                cancelled=lambda: stop() is not None,
            )
        with session_scope(db_url) as session:
            task = session.get(RunTask, task_id)
            task.status = (
                "cancelled" if result.cancelled else "timed_out" if result.timed_out else "done"
            )
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
