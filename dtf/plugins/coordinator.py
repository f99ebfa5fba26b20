"""Hooks the coordinator (the ``dtf`` CLI process) fires around a run it submits or waits for.

Each function reads what its payload needs only when some plugin implements
the hook, so a run without plugins pays nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import select

from dtf.config import Settings
from dtf.db.models import Batch, Run, RunTask
from dtf.db.session import session_scope
from dtf.errors import BadInput
from dtf.plugins.manager import (
    fire,
    load_plugins,
    plugin_manager,
    settings_keys,
    settings_sections,
)
from dtf.plugins.payloads import (
    coordinator_payload,
    run_payload,
    summary_payload,
    task_payload,
)

logger = logging.getLogger("dtf.plugins")

_F = TypeVar("_F", bound=Callable)


def never_raises(func: _F) -> _F:
    """Plugins are worth less than the run: a failure to even build a payload is logged."""

    @functools.wraps(func)
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            line = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            logger.warning("dtf: plugins were not told (%s failed: %s)", func.__name__, line)
            logger.debug("dtf: %s traceback", func.__name__, exc_info=exc)
            return None

    return call  # type: ignore[return-value]


def implemented(hook_name: str) -> bool:
    """True when some plugin implements ``hook_name``."""
    try:
        return bool(getattr(plugin_manager().hook, hook_name).get_hookimpls())
    except Exception:
        return False


@never_raises
def coordinator_started(settings: Settings, command: str, spec=None) -> None:
    """Load the task file's plugins, fire ``dtf_coordinator_started``, and arrange
    for ``dtf_coordinator_stopped`` when the click command ends (also on error)."""
    import click

    if spec is not None and getattr(spec, "plugins", None):
        load_plugins(spec.plugins, source="task file")
    payload = coordinator_payload(settings, command)
    fire("dtf_coordinator_started", coordinator=payload)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(lambda: fire("dtf_coordinator_stopped", coordinator=payload))


def check_settings_sections(spec) -> None:
    """Refuse an ``integrations.<name>`` that no loaded plugin reads (a misspelt name would
    otherwise be ignored); after :func:`coordinator_started` loaded the task file's."""
    sections = getattr(spec, "integrations", None) or {}
    unread = sorted(set(sections) - settings_sections())
    if unread:
        known = ", ".join(sorted(settings_sections()))
        raise BadInput(
            f"integrations.{unread[0]}: no loaded plugin reads this section (known: {known})"
        )
    # A misspelt key too: refused now, not when the plugin reads it after the tests ran.
    keys = settings_keys()
    for section, values in sorted(sections.items()):
        if section in keys and isinstance(values, dict):
            for key in sorted(set(values) - keys[section]):
                known = ", ".join(sorted(keys[section]))
                raise BadInput(f"integrations.{section}.{key}: unknown setting (known: {known})")


@never_raises
def run_stored(db_url: str, run_id: str, headers: Sequence) -> None:
    """``dtf_task_created`` for each batch and command task of a stored run."""
    if implemented("dtf_task_created"):
        for task in _task_payloads(db_url, run_id, headers, "pending"):
            fire("dtf_task_created", task=task)


@never_raises
def run_sent(db_url: str, run_id: str, headers: Sequence, *, sent: bool) -> None:
    """``dtf_task_assigned`` for each task sent to its queue, or ``dtf_task_cancelled``
    for each when the run could not be sent."""
    hook = "dtf_task_assigned" if sent else "dtf_task_cancelled"
    if implemented(hook):
        for task in _task_payloads(db_url, run_id, headers, "queued" if sent else "cancelled"):
            fire(hook, task=task)


@never_raises
def run_submitted(db_url: str, run_id: str) -> None:
    """Store the CI context of the job that submitted the run, then ``dtf_run_submitted``."""
    from dtf.ci_context import detect_ci

    ci = detect_ci()
    with session_scope(db_url) as session:
        run = session.get(Run, run_id)
        if ci is not None:
            ci.apply_to(run)
        payload = run_payload(run)
    fire("dtf_run_submitted", run=payload)


@never_raises
def run_finished(db_url: str, summary) -> None:
    """``dtf_run_finished`` with the run and its summary (the CLI saw it finish).

    The run's task-file ``plugins`` are loaded first: ``dtf wait RUN`` is not given
    the task file, and a plugin ``dtf run`` already loaded is not loaded twice. What
    worker-side hooks printed for the run on the embedded default is printed first
    (see :mod:`dtf.plugins.output`)."""
    from dtf.config import load_settings
    from dtf.plugins.output import print_kept

    print_kept(load_settings().home, summary.run_id)
    with session_scope(db_url) as session:
        stored = session.get(Run, summary.run_id)
        plugins = list((stored.spec or {}).get("plugins") or []) if stored is not None else []
    if plugins:
        load_plugins(plugins, source="task file")
    if not implemented("dtf_run_finished"):
        return
    from dtf.summary import failures

    with session_scope(db_url) as session:
        run = run_payload(session.get(Run, summary.run_id))
        done = summary_payload(summary, failures(session, summary.run_id))
    fire("dtf_run_finished", run=run, summary=done)


def ordered_batches(run_id: str, task_plan) -> list:
    """A task's planned batches in the order a scheduler plugin chose (else as planned)."""
    batches = list(task_plan.batches)
    if len(batches) < 2 or not implemented("dtf_schedule_batches"):
        return batches
    try:
        return _scheduled(run_id, task_plan, batches)
    except Exception as exc:
        logger.warning("dtf: could not ask scheduler plugins (%s); kept the plan", exc)
        return batches


def _scheduled(run_id: str, task_plan, batches: list) -> list:
    task = {
        "run_id": run_id,
        "position": task_plan.position,
        "type": task_plan.spec.type,
        "name": task_plan.spec.name,
        "queue": task_plan.queue,
        "priority": task_plan.priority,
    }
    described = [
        {
            "position": position,
            "queue": planned.queue,
            "hardware": planned.hardware,
            "size": len(planned.items),
            "estimated_s": planned.estimated_s,
            "nodeids": [item.nodeid for item in planned.items],
        }
        for position, planned in enumerate(batches)
    ]
    for order in fire("dtf_schedule_batches", task=task, batches=described):
        if isinstance(order, list) and sorted(order) == list(range(len(batches))):
            return [batches[i] for i in order]
        logger.warning(
            "dtf: a scheduler plugin returned %r, not a permutation of 0..%d; kept the plan",
            order,
            len(batches) - 1,
        )
    return batches


def _task_payloads(db_url: str, run_id: str, headers: Sequence, status: str) -> list[dict]:
    with session_scope(db_url) as session:
        batches = {b.id: b for b in session.scalars(select(Batch).filter_by(run_id=run_id))}
        tasks = {t.id: t for t in session.scalars(select(RunTask).filter_by(run_id=run_id))}
        payloads = []
        for header in headers:
            if header.kind == "batch":
                batch = batches[header.key]
                payloads.append(
                    task_payload(
                        run_id, "batch", batch.id, task_id=batch.task_id, queue=batch.queue,
                        hardware=batch.hardware, size=batch.size, priority=header.priority,
                        status=status,
                    )
                )  # fmt: skip
            elif header.kind == "command":
                task = tasks[int(header.key)]
                payloads.append(
                    task_payload(
                        run_id, "command", task.id, task_id=task.id, queue=task.queue,
                        size=1, priority=header.priority, status=status,
                    )
                )  # fmt: skip
            else:  # another kind of job (a benchmark): what the header says
                payloads.append(
                    task_payload(
                        run_id, header.kind, header.key, queue=header.queue,
                        priority=header.priority, status=status,
                    )
                )  # fmt: skip
    return payloads
