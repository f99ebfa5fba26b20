"""A run as JSON: every field the database holds for it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from dtf.db.models import Attempt, Batch, Run, RunTask, TestItem, TestResult
from dtf.summary import summarize


def _row(obj: Any) -> dict[str, Any]:
    values = {}
    for column in inspect(obj).mapper.column_attrs:
        value = getattr(obj, column.key)
        values[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return values


def run_json(session: Session, run_id: str) -> dict[str, Any]:
    """The run, its summary, tasks, batches with attempts, items and results."""
    run = session.get(Run, run_id)
    summary = summarize(session, run_id)
    batches = session.scalars(select(Batch).filter_by(run_id=run_id).order_by(Batch.position)).all()
    attempts = session.scalars(
        select(Attempt).where(Attempt.batch_id.in_([b.id for b in batches])).order_by(Attempt.id)
    ).all()
    by_batch: dict[str, list[dict]] = {}
    for attempt in attempts:
        by_batch.setdefault(attempt.batch_id, []).append(_row(attempt))
    return {
        "run": _row(run),
        "summary": {
            "status": summary.status,
            "total": summary.total,
            "finished": summary.finished,
            "counts": summary.counts,
            "exit_code": summary.exit_code if summary.done else None,
        },
        "tasks": [
            _row(t)
            for t in session.scalars(
                select(RunTask).filter_by(run_id=run_id).order_by(RunTask.position)
            )
        ],
        "batches": [{**_row(b), "attempts": by_batch.get(b.id, [])} for b in batches],
        "items": [
            _row(i)
            for i in session.scalars(
                select(TestItem).filter_by(run_id=run_id).order_by(TestItem.id)
            )
        ],
        "results": [
            _row(r)
            for r in session.scalars(
                select(TestResult).filter_by(run_id=run_id).order_by(TestResult.id)
            )
        ],
    }
