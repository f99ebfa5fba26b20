"""A dtf database with a history of runs, for integrations that read it (trackers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from dtf.db.models import Base, Run, RunTask, TestItem, TestResult

SUITE = "/srv/ci/project"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


@contextmanager
def history_db(folder: Path) -> Iterator[Session]:
    """A session on a fresh SQLite database with dtf's tables."""
    engine = create_engine(f"sqlite:///{folder / 'dtf.sqlite'}")
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def add_run(session: Session, n: int, outcomes: dict, *, suite=SUITE, status="failed") -> str:
    """A finished run ``n`` minutes after T0 whose tests ended with ``outcomes``:
    a tuple gives a test a call and a teardown line, a list its attempts (reruns:
    all but the last superseded)."""
    run_id = f"run-{suite[-1]}-{n:03d}"
    created = T0 + timedelta(minutes=n)
    session.add(Run(id=run_id, status=status, workdir=suite, created_at=created, spec={}))
    task = RunTask(
        run_id=run_id, position=0, type="test", queue="cpu", workdir=suite, suite=suite,
        timeout=60.0,
    )  # fmt: skip
    session.add(task)
    session.flush()
    for nodeid, outcome in outcomes.items():
        item = TestItem(run_id=run_id, task_id=task.id, nodeid=nodeid, path=nodeid)
        session.add(item)
        session.flush()
        if isinstance(outcome, tuple):
            lines = [
                (when, o, 1, False) for when, o in zip(("call", "teardown"), outcome, strict=False)
            ]
        elif isinstance(outcome, list):
            last = len(outcome)
            lines = [("call", o, i, i < last) for i, o in enumerate(outcome, start=1)]
        else:
            lines = [("call", outcome, 1, False)]
        for when, line, attempt, superseded in lines:
            session.add(
                TestResult(
                    run_id=run_id, item_id=item.id, nodeid=nodeid, outcome=line, when=when,
                    attempt=attempt, superseded=superseded,
                    longrepr=f"def {nodeid}\n>   assert x\nE   AssertionError: {n}"
                    if line in ("failed", "error") else None,
                )
            )  # fmt: skip
    session.commit()
    return run_id
