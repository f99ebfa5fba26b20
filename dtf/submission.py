"""Submit a planned run: check the broker and workers, store the plan, send the chord."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import insert

from dtf.benchmarking.store import store_planned_jobs
from dtf.config import CONTROL_QUEUE, Settings, redact
from dtf.db.models import Batch, Run, RunTask, TestItem
from dtf.db.session import session_scope
from dtf.errors import BadInput, InfrastructureError
from dtf.plugins.coordinator import ordered_batches, run_sent
from dtf.scheduling.canvas import HeaderTask, run_canvas
from dtf.scheduling.durations import DurationHistory
from dtf.scheduling.planner import Plan, route_run
from dtf.scheduling.routing import LiveWorker
from dtf.spec import run_spec_to_json
from dtf.tasks.stopping import stop_message
from dtf.tasks.store import result_row


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


def live_workers(db_url: str) -> list[LiveWorker]:
    """Registered workers whose heartbeat is recent, as routing sees them."""
    from dtf.worker_status import worker_rows

    with session_scope(db_url) as session:
        rows = worker_rows(session)
    return [LiveWorker.from_row(row) for row in rows if row["state"] == "online"]


def wait_for_workers_to_register(
    db_url: str, hostnames: set[str], timeout: float, still_starting: Callable[[], str | None]
) -> None:
    """Block until the workers named ``hostnames`` registered (local workers starting up)."""
    deadline = time.monotonic() + timeout
    while True:
        if hostnames <= {w.hostname for w in live_workers(db_url)}:
            return
        problem = still_starting()
        if problem:
            raise InfrastructureError(problem)
        if time.monotonic() > deadline:
            raise InfrastructureError(
                f"the local workers did not register within {timeout:g}s; "
                "see the worker log under $DTF_HOME/logs"
            )
        time.sleep(0.1)


def histories(db_url: str) -> Callable[[str, str], DurationHistory]:
    """Duration history per (suite, hardware), read once each."""
    cache: dict[tuple[str, str], DurationHistory] = {}

    def history(suite: str, hardware: str) -> DurationHistory:
        if (suite, hardware) not in cache:
            with session_scope(db_url) as session:
                cache[(suite, hardware)] = DurationHistory.load(session, suite, hardware)
        return cache[(suite, hardware)]

    return history


def route_when_possible(
    db_url: str, plan: Plan, wait: float, *, private: set[str] | None = None
) -> Plan:
    """Route the plan; with ``wait`` > 0, keep trying while no worker can take it yet.

    ``private``: only these workers take the run, each through its own queue
    (``dtf run``'s local workers, which consume nothing else).
    """
    deadline = time.monotonic() + wait
    while True:
        workers = live_workers(db_url)
        if private is not None:
            workers = [replace(w, private=True) for w in workers if w.hostname in private]
        try:
            return route_run(plan, workers, histories(db_url), waited=wait)
        except InfrastructureError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(1.0)


def store_plan(
    db_url: str, plan: Plan, *, workdir: str, bundle: str | None = None
) -> tuple[str, list[HeaderTask]]:
    """Write the run, its tasks, items and batches; return the run id and its header tasks.

    With a ``bundle``, task working directories are stored relative to the
    bundle's root (``workdir``), since each worker unpacks it somewhere else.
    """
    run_id = uuid.uuid4().hex[:12]
    headers: list[HeaderTask] = []
    with session_scope(db_url) as session:
        session.add(
            Run(
                id=run_id,
                name=plan.spec.name,
                spec=run_spec_to_json(plan.spec),
                labels=dict(plan.spec.labels),
                workdir=workdir,
                bundle=bundle,
            )
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
                workdir=_task_workdir(tp.workdir, workdir, bundle, tp.position),
                suite=str(tp.workdir),
                timeout=tp.timeout,
                stop_reason=_stopped_at_collection(tp),
            )
            session.add(task)
            session.flush()
            if tp.spec.type == "command":
                headers.append(
                    HeaderTask("command", str(task.id), tp.queue, tp.priority, tp.timeout)
                )
            if tp.spec.type == "benchmark":
                headers += store_planned_jobs(session, run_id, task, tp)
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
                session.add(result_row(record, run_id=run_id, item_id=item.id))
            items: list[dict] = []
            for position, planned in enumerate(ordered_batches(run_id, tp)):
                batch = Batch(
                    id=uuid.uuid4().hex,
                    run_id=run_id,
                    task_id=task.id,
                    position=position,
                    queue=planned.queue,
                    size=len(planned.items),
                    test_timeout=planned.timeout,
                    hardware=planned.hardware,
                    estimated_s=planned.estimated_s,
                )
                session.add(batch)
                items += (
                    {"run_id": run_id, "task_id": task.id, "batch_id": batch.id,
                     "nodeid": t.nodeid, "path": t.path, "requirements": t.requirements}
                    for t in planned.items
                )  # fmt: skip
                headers.append(
                    HeaderTask(
                        "batch",
                        batch.id,
                        planned.queue,
                        tp.priority if planned.priority is None else planned.priority,
                        planned.timeout * len(planned.items),
                        exclusive=planned.exclusive,
                        tests=len(planned.items),
                    )
                )
            if items:  # one INSERT of many rows: a suite of thousands of tests
                session.flush()
                session.execute(insert(TestItem), items)
    return run_id, headers


def send_run(
    db_url: str, run_id: str, headers: list[HeaderTask], control_queue: str = CONTROL_QUEUE
) -> None:
    """Send the run's chord; a run with nothing to send is finished at once."""
    from dtf.celery_app import QueueMismatch, app, check_queues

    _no_result_subscriptions()
    try:
        if headers:
            check_queues(app, sorted({h.queue for h in headers} | {control_queue}))
            run_canvas(run_id, headers, control_queue).apply_async()
            run_sent(db_url, run_id, headers, sent=True)
            return
        from dtf.tasks.finalize import finalize_run

        finalize_run([], run_id)  # only collection errors: nothing to execute
    except (KombuOperationalError, QueueMismatch) as exc:
        with session_scope(db_url) as session:
            run = session.get(Run, run_id)
            run.status = "error"
            run.error = f"could not send the run to the broker: {exc}"
        run_sent(db_url, run_id, headers, sent=False)
        raise InfrastructureError(f"could not send run {run_id} to the broker: {exc}") from exc


def _no_result_subscriptions() -> None:
    """Keep Celery's Redis result backend from subscribing to the sent tasks' results.

    dtf reads outcomes from its database, never from the result backend. A subscription
    is unsubscribed from ``AsyncResult.__del__``, wherever the garbage collector runs it;
    with the broker gone, its reconnect gives up with a RuntimeError in the middle of
    ``dtf run``'s wait instead of the one-line "cannot reach the broker". Celery's own
    workers send tasks the same way (a task there cannot join a result either).
    """
    try:
        from celery._state import _set_task_join_will_block
    except ImportError:  # a Celery without it: subscriptions stay, nothing else changes
        return
    _set_task_join_will_block(True)


def _stopped_at_collection(tp) -> str | None:
    """A test task whose collection errors already reach its -x / --maxfail runs nothing
    more (pytest stops before running a test)."""
    maxfail = getattr(tp.spec, "maxfail", None)
    errors = sum(1 for record in tp.collection_errors if record.outcome == "error")
    return stop_message(maxfail) if maxfail and errors >= maxfail else None


def check_bundle_holds(plan: Plan, root: Path) -> None:
    """Refuse a bundled run whose tests lie outside ``root``, the directory packed."""
    root = root.resolve()
    for task in plan.tasks:
        for item in task.items:
            path = (task.workdir / item.path).resolve()
            if root != path and root not in path.parents:
                raise BadInput(
                    f"--code bundle packs {root}, and {path} is outside it: run dtf from a "
                    "directory that holds the tests, or use --code path"
                )


def _task_workdir(task_dir, root: str, bundle: str | None, position: int) -> str:
    if bundle is None:
        return str(task_dir)
    try:
        return task_dir.relative_to(root).as_posix()
    except ValueError:
        raise BadInput(
            f"tasks[{position}].workdir: {task_dir} is outside {root}, the directory packed "
            "into the bundle; run dtf from a directory that holds it"
        ) from None
