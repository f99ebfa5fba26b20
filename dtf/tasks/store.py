"""What tasks write to the database while they run: attempts and results, one commit each."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from dtf.db.models import Attempt, Batch, Run, RunTask, TestItem, TestResult, utcnow
from dtf.db.session import session_scope
from dtf.executor.records import TestRecord


@dataclass(frozen=True)
class BatchWork:
    """What one attempt at a batch has to run."""

    run_id: str
    attempt_id: int
    workdir: str  # relative to the bundle's root when ``bundle`` is set
    bundle: str | None
    test_timeout: float
    pytest_args: list[str]
    items: dict[str, int]  # nodeid -> item id, in run order, only items without a result


def start_attempt(db_url: str, batch_id: str, worker: str | None) -> BatchWork:
    """Record a new attempt and return the batch's items that still have no result.

    A redelivered batch (its worker died) only runs what the dead attempt did
    not finish, so no test is counted twice.
    """
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise LookupError(f"batch {batch_id} is not in the database")
        task = session.get(RunTask, batch.task_id)
        number = (
            session.scalar(select(func.count()).select_from(Attempt).filter_by(batch_id=batch_id))
            or 0
        ) + 1
        attempt = Attempt(batch_id=batch_id, number=number, worker=worker)
        session.add(attempt)
        now = utcnow()
        batch.status = "running"
        batch.started_at = batch.started_at or now
        _mark_run_started(session, batch.run_id, now)
        pending = session.execute(
            select(TestItem.nodeid, TestItem.id)
            .filter_by(batch_id=batch_id, outcome=None)
            .order_by(TestItem.id)
        ).all()
        session.flush()
        return BatchWork(
            run_id=batch.run_id,
            attempt_id=attempt.id,
            workdir=task.workdir,
            bundle=session.get(Run, batch.run_id).bundle,
            test_timeout=batch.test_timeout or task.timeout,
            pytest_args=list(task.spec.get("pytest_args") or []),
            items=dict(pending),
        )


def _mark_run_started(session, run_id: str, now) -> None:
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "pending")
        .values(status="running", started_at=now)
    )


def result_row(
    record: TestRecord,
    *,
    run_id: str,
    item_id: int,
    attempt_id: int | None = None,
    worker: str | None = None,
) -> TestResult:
    """The database row of one result line."""
    return TestResult(
        run_id=run_id,
        item_id=item_id,
        attempt_id=attempt_id,
        nodeid=record.nodeid,
        outcome=record.outcome,
        when=record.when,
        duration=record.duration,
        longrepr=record.longrepr,
        stdout=record.stdout,
        stderr=record.stderr,
        worker=worker,
    )


def record_result(db_url: str, work: BatchWork, record: TestRecord, worker: str | None) -> bool:
    """Store one test result as soon as it exists; False if it was already stored."""
    item_id = work.items.get(record.nodeid)
    if item_id is None:
        return False
    try:
        with session_scope(db_url) as session:
            session.add(
                result_row(
                    record,
                    run_id=work.run_id,
                    item_id=item_id,
                    attempt_id=work.attempt_id,
                    worker=worker,
                )
            )
            if record.when != "teardown":
                session.execute(
                    update(TestItem)
                    .where(TestItem.id == item_id)
                    .values(outcome=record.outcome, duration=record.duration)
                )
    except IntegrityError:
        return False  # a concurrent redelivery of this batch stored it first
    return True


def finish_attempt(
    db_url: str,
    batch_id: str,
    attempt_id: int,
    *,
    status: str,
    children: int = 0,
    exit_codes: list[int] | None = None,
    error: str | None = None,
    startup_s: float | None = None,
    test_s: float | None = None,
) -> None:
    """Close an attempt and its batch (``status`` is ``completed`` or ``broken``)."""
    with session_scope(db_url) as session:
        now = utcnow()
        attempt = session.get(Attempt, attempt_id)
        if attempt is not None:
            attempt.status = status
            attempt.children = children
            attempt.exit_codes = exit_codes or []
            attempt.error = error
            attempt.finished_at = now
            attempt.startup_s = startup_s
            attempt.test_s = test_s
        batch = session.get(Batch, batch_id)
        batch.status = "done" if status == "completed" else "broken"
        batch.error = error
        batch.finished_at = now


def mark_batch_broken(db_url: str, batch_id: str, error: str) -> None:
    """Record that a batch could not run at all (no attempt was started)."""
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is not None:
            batch.status = "broken"
            batch.error = error
            batch.finished_at = utcnow()
