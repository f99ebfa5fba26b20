"""Submit a planned run: check the broker and workers, store the plan, send the chord."""

from __future__ import annotations

import uuid
from collections import defaultdict

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from dtf.config import Settings, redact
from dtf.db.models import Batch, Run, RunTask, TestItem, TestResult, utcnow
from dtf.db.session import session_scope
from dtf.errors import InfrastructureError
from dtf.scheduling.canvas import HeaderTask, run_canvas
from dtf.scheduling.planner import Plan
from dtf.spec import run_spec_to_json


def check_broker(app: Celery, settings: Settings, timeout: float = 3.0) -> None:
    """Fail with one line when the broker does not answer."""
    try:
        with app.connection() as connection:  # a new one: a pooled one may be stale
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InfrastructureError(
            f"cannot reach the broker at {redact(settings.broker_url)}: {reason}; "
            "check DTF_BROKER_URL and that the broker is running"
        ) from exc


def queue_slots(app: Celery, timeout: float = 1.0) -> dict[str, int]:
    """Queue name -> worker slots (pool processes) of the live workers consuming it."""
    inspect = app.control.inspect(timeout=timeout)
    queues = inspect.active_queues() or {}
    stats = inspect.stats() or {} if queues else {}
    slots: dict[str, int] = defaultdict(int)
    for hostname, consumed in queues.items():
        pool = stats.get(hostname, {}).get("pool", {})
        concurrency = pool.get("max-concurrency", 1) if isinstance(pool, dict) else 1
        for queue in consumed:
            slots[queue["name"]] += concurrency
    return dict(slots)


def require_consumers(live: dict[str, int], queues: set[str]) -> None:
    """Refuse a run that no live worker can take (nothing is queued)."""
    missing = sorted(q for q in queues if q not in live)
    if missing:
        queue = missing[0]
        raise InfrastructureError(
            f"no live worker consumes queue '{queue}'; start one with "
            f"`celery -A dtf worker -Q {queue}` or pass --workers N to start local ones "
            "(nothing was queued)"
        )


def store_plan(db_url: str, plan: Plan, *, workdir: str) -> tuple[str, list[HeaderTask]]:
    """Write the run, its tasks, items and batches; return the run id and its header tasks."""
    run_id = uuid.uuid4().hex[:12]
    headers: list[HeaderTask] = []
    with session_scope(db_url) as session:
        session.add(
            Run(id=run_id, name=plan.spec.name, spec=run_spec_to_json(plan.spec), workdir=workdir)
        )
        for tp in plan.tasks:
            task = RunTask(
                run_id=run_id,
                position=tp.position,
                type=tp.spec.type,
                name=tp.spec.name,
                spec=tp.spec.model_dump(mode="json"),
                queue=tp.queue,
                priority=tp.priority,
                workdir=str(tp.workdir),
                timeout=tp.timeout,
            )
            session.add(task)
            session.flush()
            if tp.spec.type == "command":
                headers.append(
                    HeaderTask("command", str(task.id), tp.queue, tp.priority, tp.timeout)
                )
            for record in tp.collection_errors:
                item = TestItem(
                    run_id=run_id,
                    task_id=task.id,
                    nodeid=record.nodeid,
                    path=record.nodeid,
                    outcome=record.outcome,
                )
                session.add(item)
                session.flush()
                session.add(
                    TestResult(
                        run_id=run_id,
                        item_id=item.id,
                        nodeid=record.nodeid,
                        outcome=record.outcome,
                        when=record.when,
                        longrepr=record.longrepr,
                        created_at=utcnow(),
                    )
                )
            for position, tests in enumerate(tp.batches):
                batch = Batch(
                    id=uuid.uuid4().hex,
                    run_id=run_id,
                    task_id=task.id,
                    position=position,
                    queue=tp.queue,
                    size=len(tests),
                )
                session.add(batch)
                session.add_all(
                    TestItem(
                        run_id=run_id,
                        task_id=task.id,
                        batch_id=batch.id,
                        nodeid=t.nodeid,
                        path=t.path,
                        requirements=t.requirements,
                    )
                    for t in tests
                )
                headers.append(
                    HeaderTask("batch", batch.id, tp.queue, tp.priority, tp.timeout * len(tests))
                )
    return run_id, headers


def send_run(db_url: str, run_id: str, headers: list[HeaderTask]) -> None:
    """Send the run's chord; a run with nothing to send is finished at once."""
    try:
        if headers:
            run_canvas(run_id, headers).apply_async()
            return
        from dtf.tasks.finalize import finalize_run

        finalize_run([], run_id)  # only collection errors: nothing to execute
    except KombuOperationalError as exc:
        with session_scope(db_url) as session:
            run = session.get(Run, run_id)
            run.status = "error"
            run.error = f"could not send the run to the broker: {exc}"
        raise InfrastructureError(f"could not send run {run_id} to the broker: {exc}") from exc
