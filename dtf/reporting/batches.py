"""How well a run's batches used their workers: start-up, time in tests, the rest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.db.models import Attempt, Batch


def batch_efficiency(session: Session, run_id: str) -> list[dict[str, Any]]:
    """One row per batch: planned estimate, and for its last attempt wall, start-up,
    test and other time (the rest of the wall time: process exits, restarts, I/O)."""
    batches = session.scalars(
        select(Batch).filter_by(run_id=run_id).order_by(Batch.task_id, Batch.position)
    ).all()
    attempts: dict[str, list[Attempt]] = {}
    for attempt in session.scalars(
        select(Attempt)
        .join(Batch, Attempt.batch_id == Batch.id)
        .where(Batch.run_id == run_id)
        .order_by(Attempt.id)
    ):
        attempts.setdefault(attempt.batch_id, []).append(attempt)
    rows = []
    for batch in batches:
        tries = attempts.get(batch.id, [])
        last = tries[-1] if tries else None
        wall = (
            (last.finished_at - last.started_at).total_seconds()
            if last is not None and last.finished_at
            else None
        )
        startup = last.startup_s if last is not None else None
        in_tests = last.test_s if last is not None else None
        other = max(0.0, wall - (startup or 0.0) - (in_tests or 0.0)) if wall is not None else None
        rows.append(
            {
                "batch": batch.position,
                "id": batch.id,
                "queue": batch.queue,
                "hardware": batch.hardware,
                "tests": batch.size,
                "status": batch.status,
                "estimated_s": batch.estimated_s,
                "wall_s": wall,
                "startup_s": startup,
                "test_s": in_tests,
                "other_s": other,
                "efficiency": (in_tests / wall) if wall and in_tests is not None else None,
                "attempts": len(tries),
                "worker": last.worker if last is not None else None,
            }
        )
    return rows
