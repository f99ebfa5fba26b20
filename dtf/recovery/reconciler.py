"""The reconciler: the database is the source of truth, the broker may lose work.

Each live worker runs a pass at every heartbeat (``DTF_RECONCILE_INTERVAL`` sets another
cadence); passes on several workers at once are safe (each step claims its work with a
conditional update or a unique row, so a batch is sent again once).

Lost work is found from evidence:

1. An attempt still running on a worker that is lost (no heartbeat for three intervals,
   or shut down) is marked ``lost`` and its batch is sent again as the policy chooses for
   ``worker_lost`` (reassign, retry on its queue, other hardware, quarantine, give up).
   The message is sent with the batch's task id and its chord options, so the chord
   completes when the new delivery returns. A reconciler whose own database writes
   just came back judges no worker for three intervals: their beats failed too.
2. A batch that never started and whose message the broker no longer holds, at two
   passes in a row (a Redis restarted without persistence; see broker_audit): sent
   again at once (``broker_unreachable``).
3. Last resort, for what no evidence shows (a broker that cannot be read that way): a
   batch that never started although ``DTF_RECONCILE_GRACE`` seconds (300) passed since
   its run was created and a live worker of its queue is idle is sent again.
4. A run whose batches and commands have all ended but that is not finished a few
   seconds later (its chord callback was lost) is finalized.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from dtf.db.models import Attempt, Batch, Run, RunTask, TestItem
from dtf.db.session import session_scope
from dtf.recovery import classes as fc
from dtf.recovery import engine

logger = logging.getLogger(__name__)

#: seconds a run whose work has all ended may wait for its chord before it is finalized
FINALIZE_GRACE_S = 5.0
#: a batch younger than this is not judged by the broker's evidence (its chord may
#: still be on its way to the broker)
EVIDENCE_MIN_AGE_S = 15.0


def reconcile_interval(heartbeat_s: float = 0.0) -> float:
    """Seconds between passes: ``DTF_RECONCILE_INTERVAL``, else every heartbeat."""
    return float(os.environ.get("DTF_RECONCILE_INTERVAL") or heartbeat_s)


def reconcile_grace() -> float:
    return float(os.environ.get("DTF_RECONCILE_GRACE") or 300.0)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


#: Batches whose message the broker did not hold at the last pass (per process).
_missing: set[str] = set()


def reconcile(
    db_url: str,
    send: Callable | None = None,
    now: datetime | None = None,
    *,
    audit: Callable[[list[str]], set[str] | None] | None = None,
    judge_workers: bool = True,
) -> dict:
    """One pass; returns the batch ids sent again ("lost", "lost_messages") and the runs
    finalized ("finalized").

    ``audit(queues)``: the task ids the broker holds for those queues, None where it
    cannot tell (default: read Redis). ``judge_workers``: False right after this
    process's own database outage, when every worker's beat looks stale."""
    from dtf.submission import live_workers
    from dtf.worker_status import worker_rows

    now = now or datetime.now(timezone.utc)
    send = send or _send
    audit = audit or _audit_broker
    with session_scope(db_url) as session:
        rows = {row["hostname"]: row for row in worker_rows(session, now)}
        running = session.execute(
            select(Attempt.id, Attempt.worker, Attempt.batch_id)
            .join(Batch, Batch.id == Attempt.batch_id)
            .where(Attempt.status == "running", Batch.status == "running")
        ).all()
    gone = [
        (attempt_id, worker, batch_id)
        for attempt_id, worker, batch_id in running
        if judge_workers and rows.get(worker, {}).get("state", "lost") in ("lost", "offline")
    ]
    done = {"lost": [], "lost_messages": [], "finalized": []}
    live = live_workers(db_url) if gone else []
    for attempt_id, worker, batch_id in gone:
        if _claim_lost(db_url, attempt_id):
            _redispatch(db_url, batch_id, worker, fc.WORKER_LOST, live, send,
                        f"worker {worker} stopped heartbeating during the batch")  # fmt: skip
            done["lost"].append(batch_id)
    done["lost_messages"] = _lost_messages(db_url, rows, now, send, audit)
    done["finalized"] = _finalize_stalled(db_url, now)
    return done


def _claim_lost(db_url: str, attempt_id: int) -> bool:
    with session_scope(db_url) as session:
        return bool(
            session.execute(
                update(Attempt)
                .where(Attempt.id == attempt_id, Attempt.status == "running")
                .values(status="lost", failure_class=fc.WORKER_LOST, finished_at=_now())
            ).rowcount
        )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _redispatch(db_url, batch_id, failed_worker, failure_class, live, send, detail) -> None:
    from dtf.tasks import store

    work = store.describe_batch(db_url, batch_id)
    if work is None or not work.items:
        return
    plan = engine.plan_batch_recovery(
        db_url, work, failure_class, detail, failed_worker=failed_worker, live=live,
        exclude={"retry_smaller_batch"},  # only a running task can replace itself
    )  # fmt: skip
    logger.warning("reconciler: batch %s: %s -> %s", batch_id, failure_class, plan.strategy)
    if plan.strategy == "give_up":
        store.give_up(db_url, batch_id, None, plan.reason)
        engine.finish(db_url, plan.event_id, False, None)
        return
    if plan.strategy == "quarantine_worker" and failed_worker:
        engine.quarantine(db_url, failed_worker, f"{failure_class}: {plan.reason}")
    queue = plan.queue or work.queue
    engine.move_batch(db_url, batch_id, queue, plan.hardware)
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch.status == "running":
            batch.status = "pending"
        dispatch = dict(batch.dispatch or {})
    send(batch_id, queue, dispatch, plan.delay)


def _send(batch_id: str, queue: str, dispatch: dict, countdown: float) -> None:
    from dtf.tasks.execute import execute_batch

    options = {k: v for k, v in dispatch.items() if v is not None}
    execute_batch.apply_async(
        (batch_id,), task_id=batch_id, queue=queue, countdown=countdown or None, **options
    )


def _audit_broker(queues: list[str]) -> set[str] | None:
    from celery import current_app

    from dtf.recovery.broker_audit import queued_task_ids

    return queued_task_ids(current_app, queues)


def _lost_messages(db_url: str, rows: dict, now: datetime, send, audit) -> list[str]:
    grace = timedelta(seconds=reconcile_grace())
    idle = {
        queue
        for row in rows.values()
        if row["state"] == "online" and not row.get("active_tasks")
        for queue in [*row["healthy_queues"], f"dtf.worker.{row['hostname']}"]
    }
    with session_scope(db_url) as session:
        # Pending batches no worker ever started; sent again already or not (then the
        # last time it was, for the grace period).
        resent_at = (
            select(func.max(Attempt.finished_at))
            .where(Attempt.batch_id == Batch.id)
            .scalar_subquery()
        )
        never_started = session.execute(
            select(Batch.id, Batch.queue, func.coalesce(resent_at, Run.created_at),
                   select(func.count(Attempt.id)).where(Attempt.batch_id == Batch.id)
                   .scalar_subquery())
            .join(Run, Run.id == Batch.run_id)
            .where(Batch.status == "pending", Run.status.in_(("pending", "running")))
            .where(
                ~select(Attempt.id)
                .where(Attempt.batch_id == Batch.id, Attempt.worker.is_not(None))
                .exists()
            )
        ).all()  # fmt: skip
    held = audit(sorted({row[1] for row in never_started})) if never_started else None
    old_enough = [row for row in never_started if (now - _aware(row[2])).total_seconds()
                  >= EVIDENCE_MIN_AGE_S]  # fmt: skip
    missing = {row[0] for row in old_enough if held is not None and row[0] not in held}
    twice = missing & _missing
    _missing.clear()
    _missing.update(missing - twice)
    resent = []
    for batch_id, queue, since, attempts in never_started:
        if batch_id in twice:
            detail = "its message is no longer in the broker (restarted without persistence?)"
        elif queue in idle and now - _aware(since) >= grace:
            detail = f"never started in {grace.total_seconds():g}s while its queue was idle"
        else:
            continue
        try:
            # A unique (batch, number) row: of several reconcilers, one sends it.
            with session_scope(db_url) as session:
                session.add(
                    Attempt(batch_id=batch_id, number=attempts + 1, worker=None,
                            status="lost", failure_class=fc.BROKER_UNREACHABLE,
                            finished_at=_now(), error=detail)
                )  # fmt: skip
        except IntegrityError:
            continue  # another reconciler, or the batch just started
        _redispatch(db_url, batch_id, None, fc.BROKER_UNREACHABLE, [], send, detail)
        resent.append(batch_id)
    return resent


def _finalize_stalled(db_url: str, now: datetime) -> list[str]:
    from dtf.tasks.finalize import finalize

    finalized = []
    with session_scope(db_url) as session:
        open_runs = list(
            session.scalars(select(Run.id).where(Run.status.in_(("pending", "running"))))
        )
    for run_id in open_runs:
        with session_scope(db_url) as session:
            batches = session.execute(
                select(Batch.status, Batch.finished_at).filter_by(run_id=run_id)
            ).all()
            commands = list(
                session.scalars(select(RunTask.status).filter_by(run_id=run_id, type="command"))
            )
            unfinished_items = session.scalar(
                select(TestItem.id).filter_by(run_id=run_id, outcome=None).limit(1)
            )
        if not batches and not commands:
            continue
        if any(s in ("pending", "running") for s, _ in batches):
            continue
        if any(s in ("pending", "running") for s in commands):
            continue
        if unfinished_items is not None and all(s == "done" for s, _ in batches):
            continue  # results still being written
        last = max((_aware(f) for _, f in batches if f), default=None)
        if last is not None and (now - last).total_seconds() < FINALIZE_GRACE_S:
            continue
        result = finalize(db_url, run_id)
        if not result.get("already"):
            logger.warning("reconciler: finalized run %s (its chord did not)", run_id)
            finalized.append(run_id)
    return finalized
