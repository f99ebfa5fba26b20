"""The performance table and the recovery history in the database.

``recovery_stats`` holds one row per (failure class, strategy): attempts, successes,
time to recover, CPU and memory seconds, tests affected and recovered, recent outcomes.
``recovery_events`` holds each recovery of a run: what failed, where, the level and
strategy, and how it ended. Both survive restarts; ``dtf recovery stats`` prints them.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dtf.db.models import RecoveryEvent, RecoveryStat, utcnow
from dtf.recovery import strategies as st
from dtf.recovery.resources import Cost
from dtf.recovery.scoring import RECENT, Record

logger = logging.getLogger(__name__)


def record_of(row: RecoveryStat) -> Record:
    """What scoring needs of one row of the performance table."""
    return Record(
        attempts=row.attempts,
        successes=row.successes,
        recover_s=row.recover_s,
        cpu_s=row.cpu_s,
        memory_mib_s=row.memory_mib_s,
        tests_affected=row.tests_affected,
        tests_recovered=row.tests_recovered,
        recent=list(row.recent or []),
    )


def load_table(session: Session) -> dict[tuple[str, str], Record]:
    """Every row of the performance table, keyed by (failure class, strategy)."""
    return {
        (row.failure_class, row.strategy): record_of(row)
        for row in session.scalars(select(RecoveryStat))
    }


def start_event(
    session: Session,
    *,
    run_id: str,
    failure_class: str,
    strategy: str,
    batch_id: str | None = None,
    nodeid: str | None = None,
    worker: str | None = None,
    detail: str | None = None,
    tests: int = 1,
) -> RecoveryEvent:
    """Record that a recovery started (status ``started``)."""
    event = RecoveryEvent(
        run_id=run_id,
        batch_id=batch_id,
        nodeid=nodeid,
        worker=worker,
        failure_class=failure_class,
        level=st.BY_NAME[strategy].level,
        strategy=strategy,
        status="started",
        detail=(detail or "")[:4000] or None,
        tests=tests,
        started_at=utcnow(),
    )
    session.add(event)
    session.flush()
    return event


def finish_event(
    session: Session,
    event: RecoveryEvent,
    *,
    succeeded: bool,
    cost: Cost | None = None,
    recovered: int | None = None,
) -> bool:
    """Close an open event and fold it into the performance table; False if already closed.

    ``recovered``: tests that ended with a result of their own (default: all of them on
    success, none on failure).
    """
    now = utcnow()
    closed = session.execute(
        update(RecoveryEvent)
        .where(RecoveryEvent.id == event.id, RecoveryEvent.status == "started")
        .values(status="succeeded" if succeeded else "failed", finished_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not closed:
        return False
    started = event.started_at
    seconds = cost.seconds if cost else _elapsed(started, now)
    session.execute(
        update(RecoveryEvent)
        .where(RecoveryEvent.id == event.id)
        .values(
            recover_s=seconds,
            cpu_s=cost.cpu_s if cost else None,
            memory_mib_s=cost.memory_mib_s if cost else None,
        )
        .execution_options(synchronize_session=False)
    )
    if recovered is None:
        recovered = event.tests if succeeded else 0
    _fold(session, event, succeeded, seconds, cost, recovered)
    return True


def _elapsed(started, now) -> float:
    if started.tzinfo is None:
        now = now.replace(tzinfo=None)
    return max(0.0, (now - started).total_seconds())


def _fold(session, event, succeeded: bool, seconds: float, cost, recovered: int) -> None:
    key = (event.failure_class, event.strategy)
    row = session.execute(
        select(RecoveryStat).filter_by(failure_class=key[0], strategy=key[1]).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        row = RecoveryStat(
            failure_class=key[0],
            strategy=key[1],
            level=event.level,
            attempts=0,
            successes=0,
            recover_s=0.0,
            cpu_s=0.0,
            memory_mib_s=0.0,
            tests_affected=0,
            tests_recovered=0,
            recent=[],
        )
        session.add(row)
    row.attempts += 1
    row.successes += int(succeeded)
    row.recover_s += seconds
    row.cpu_s += cost.cpu_s if cost else 0.0
    row.memory_mib_s += cost.memory_mib_s if cost else 0.0
    row.tests_affected += event.tests
    row.tests_recovered += recovered
    row.recent = [*(row.recent or []), int(succeeded)][-RECENT:]
    row.updated_at = utcnow()
    session.flush()


def open_events(session: Session, batch_id: str) -> list[RecoveryEvent]:
    """A batch's recoveries that have not ended yet, oldest first."""
    return list(
        session.scalars(
            select(RecoveryEvent)
            .filter_by(batch_id=batch_id, status="started")
            .order_by(RecoveryEvent.id)
        )
    )


def last_batch_level(session: Session, batch_id: str) -> int:
    """The highest level a batch's recoveries have reached (0: none yet)."""
    return session.scalar(
        select(func.coalesce(func.max(RecoveryEvent.level), 0)).where(
            RecoveryEvent.batch_id == batch_id, RecoveryEvent.nodeid.is_(None)
        )
    )


def batch_recoveries(session: Session, batch_id: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(RecoveryEvent)
        .where(RecoveryEvent.batch_id == batch_id, RecoveryEvent.nodeid.is_(None))
    )


def run_recoveries(session: Session, run_id: str) -> int:
    """Recoveries a run has spent (its budget is the run's ``retry_budget``)."""
    return session.scalar(
        select(func.count()).select_from(RecoveryEvent).where(RecoveryEvent.run_id == run_id)
    )


def event_dict(event: RecoveryEvent) -> dict[str, Any]:
    """A recovery as plain JSON for hooks and ``dtf recovery``."""
    return {
        "id": event.id,
        "run_id": event.run_id,
        "batch_id": event.batch_id,
        "nodeid": event.nodeid,
        "worker": event.worker,
        "failure_class": event.failure_class,
        "level": event.level,
        "level_name": st.LEVEL_NAMES[event.level],
        "strategy": event.strategy,
        "status": event.status,
        "detail": event.detail,
        "tests": event.tests,
        "recover_s": event.recover_s,
        "cpu_s": event.cpu_s,
        "memory_mib_s": event.memory_mib_s,
        "started_at": event.started_at.isoformat() if event.started_at else None,
        "finished_at": event.finished_at.isoformat() if event.finished_at else None,
    }


def fire(hook: str, **kwargs: Any) -> None:
    """Call a plugin hook (``dtf.plugins.fire``) when the plugin system is there; never raises."""
    try:
        from dtf.plugins import fire as plugin_fire
    except ImportError:
        return
    try:
        plugin_fire(hook, **kwargs)
    except Exception:  # fire never raises by contract; a broken plugin must not either
        logger.exception("hook %s failed", hook)


def record_outage(db_url: str, failure_class: str, seconds: float) -> None:
    """An outage that ended on its own while Celery reconnected (retry in place, level 1):
    folded into the performance table; it belongs to no run, so it has no event."""
    from dtf.db.session import session_scope

    with session_scope(db_url) as session:
        event = RecoveryEvent(
            failure_class=failure_class, strategy="retry_in_place", level=1, tests=0
        )
        _fold(session, event, True, seconds, Cost(seconds, 0.0, 0.0), 0)
