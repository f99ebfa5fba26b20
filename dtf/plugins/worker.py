"""Hooks fired in worker processes: tasks starting and ending, tests, the worker itself.

``setup(app)`` runs at ``celeryd_init`` (the ``dtf.worker`` entry point) and
connects Celery's task signals, which are sent in the process that executes
the task (a pool child under prefork): each delivery of ``execute_batch`` or
``execute_command`` fires ``dtf_task_started``, then ``dtf_task_completed`` or
``dtf_task_failed`` unless Celery retries or replaces it (recovery: the next
delivery fires again; the ``dtf_recovery_*`` hooks come from ``dtf.recovery``).
The registry and the result writer call the other functions here directly.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from sqlalchemy import func, select

from dtf.config import load_settings
from dtf.db.models import Attempt, Batch, RunTask
from dtf.db.session import session_scope
from dtf.plugins.coordinator import implemented
from dtf.plugins.manager import fire
from dtf.plugins.payloads import result_payload, task_payload

logger = logging.getLogger("dtf.plugins")

BATCH_TASK = "dtf.execute_batch"
COMMAND_TASK = "dtf.execute_command"
_TASK_HOOKS = ("dtf_task_started", "dtf_task_completed", "dtf_task_failed")
#: Celery states after which the task runs again (retry) or lives on as others (replace).
_NOT_OVER = ("RETRY", "IGNORED", "REJECTED")

#: Celery task id -> task payload, from prerun to postrun.
_running: dict[str, dict[str, Any]] = {}


def setup(app: Celery) -> None:
    """Connect the task signals and keep what hooks print (called once per worker through
    ``dtf.worker``)."""
    from dtf.plugins import manager, output

    # What a hook prints in a worker also reaches the dtf that waits for the run (output.py).
    manager.output_sink = output.keeper(load_settings())
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="dtf-plugins-prerun")
    signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="dtf-plugins-postrun")
    signals.task_revoked.connect(_on_revoked, weak=False, dispatch_uid="dtf-plugins-revoked")


def test_finished(record, *, run_id: str, batch_id: str | None, worker: str | None) -> None:
    """``dtf_test_finished`` for one stored result line."""
    if implemented("dtf_test_finished"):
        payload = result_payload(record, run_id=run_id, batch_id=batch_id, worker=worker)
        fire("dtf_test_finished", result=payload)


def pytest_args(batch_id: str, work) -> list[str]:
    """Extra pytest arguments from executor plugins for one batch attempt."""
    if not implemented("dtf_pytest_args"):
        return []
    batch = {
        "run_id": work.run_id,
        "id": batch_id,
        "workdir": work.workdir,
        "size": len(work.items),
        "nodeids": list(work.items),
    }
    extra: list[str] = []
    for args in fire("dtf_pytest_args", batch=batch):
        if isinstance(args, (list, tuple)) and all(isinstance(a, str) for a in args):
            extra.extend(args)
        else:
            logger.warning("dtf: an executor plugin returned %r, not a list of strings", args)
    return extra


def worker_event(hook_name: str, fields: dict[str, Any], state: str, **extra: Any) -> None:
    """Fire a ``dtf_worker_*`` hook with the registry's fields (plain values only)."""
    if not implemented(hook_name):
        return
    worker = {
        "hostname": fields.get("hostname"),
        "queues": list(fields.get("queues") or []),
        "concurrency": fields.get("concurrency"),
        "version": fields.get("version"),
        "pid": fields.get("pid"),
        "state": state,
        **extra,
    }
    fire(hook_name, worker=worker)


def _on_prerun(sender=None, task_id: str | None = None, task=None, args=(), **kwargs) -> None:
    name = getattr(task, "name", None)
    if name not in (BATCH_TASK, COMMAND_TASK) or not args:
        return
    if not any(implemented(hook) for hook in _TASK_HOOKS):
        return
    try:
        payload = _describe(name, args[0], getattr(task.request, "hostname", None))
    except Exception as exc:
        logger.warning("dtf: could not describe task %s for plugins: %s", task_id, exc)
        return
    _running[task_id] = payload
    fire("dtf_task_started", task=payload)


def _on_postrun(sender=None, task_id: str | None = None, retval=None, state=None, **kwargs):
    payload = _running.pop(task_id, None)
    if payload is None or state in _NOT_OVER:
        return
    result = retval if isinstance(retval, dict) else {}
    broken = state != "SUCCESS" or result.get("status") == "broken"
    error = result.get("error") or (None if state == "SUCCESS" else f"task ended in {state}")
    payload = {**payload, "status": "broken" if broken else "done", "error": error}
    fire("dtf_task_failed" if broken else "dtf_task_completed", task=payload)


def _on_revoked(sender=None, request=None, terminated=False, expired=False, **kwargs) -> None:
    name = getattr(request, "task_name", None) or getattr(request, "name", None)
    args = getattr(request, "args", None) or ()
    if name not in (BATCH_TASK, COMMAND_TASK) or not args:
        return
    if not implemented("dtf_task_cancelled"):
        return
    try:
        payload = _describe(name, args[0], getattr(request, "hostname", None))
    except Exception as exc:
        logger.warning("dtf: could not describe a revoked task for plugins: %s", exc)
        return
    reason = "expired" if expired else "terminated" if terminated else "revoked"
    fire("dtf_task_cancelled", task={**payload, "status": "cancelled", "error": reason})


def _describe(name: str, key, hostname: str | None) -> dict[str, Any]:
    """The task payload of a batch or command as a delivery starts."""
    with session_scope(load_settings().database_url) as session:
        if name == COMMAND_TASK:
            task = session.get(RunTask, int(key))
            return task_payload(
                task.run_id, "command", task.id, task_id=task.id, queue=task.queue, size=1,
                priority=task.priority, status="running", worker=hostname, attempt=1,
            )  # fmt: skip
        batch = session.get(Batch, key)
        earlier = session.scalar(select(func.count()).select_from(Attempt).filter_by(batch_id=key))
        return task_payload(
            batch.run_id, "batch", batch.id, task_id=batch.task_id, queue=batch.queue,
            hardware=batch.hardware, size=batch.size, status="running", worker=hostname,
            attempt=(earlier or 0) + 1,
        )  # fmt: skip
