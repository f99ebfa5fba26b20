"""dtf's hook specifications: what a plugin can implement.

Every keyword argument is a plain JSON-able dict (no ORM rows, no Celery
objects), so a plugin can log, post or store it as is. Each hook says which
process fires it: the *coordinator* is the ``dtf`` CLI process that submits a
run and waits for it (``dtf run``, ``dtf submit``, ``dtf wait``); the *worker*
is the ``celery -A dtf worker`` process (or its pool child) doing the work.
What a coordinator hook prints goes to the terminal of the ``dtf`` command; what a
worker hook prints goes to the worker's log and, on the embedded default, is also
printed by the ``dtf`` that waits for the run (:mod:`dtf.plugins.output`).

Payloads (keys a plugin can rely on; more may be added):

- ``coordinator``: ``pid``, ``hostname``, ``command``, ``broker``, ``database``
  (credentials redacted), ``embedded``.
- ``run``: ``id``, ``name``, ``status``, ``labels``, ``workdir``, ``created_at``,
  ``started_at``, ``finished_at``, ``error``, ``ci`` (``provider``, ``commit``,
  ``branch``, ``pull_request``, ``build_url`` or None), ``spec`` (the run spec).
- ``summary``: ``run_id``, ``status``, ``exit_code``, ``total``, ``finished``,
  ``counts`` (by outcome), ``failures`` (``nodeid``, ``outcome``, ``message``),
  ``broken`` (lines).
- ``task``: one unit of work sent to a queue: ``run_id``, ``kind`` (``batch`` or
  ``command``), ``id`` (batch id or run-task id), ``task_id`` (the run task),
  ``queue``, ``hardware``, ``size`` (tests), ``priority``, ``status``,
  ``worker``, ``attempt``, ``error``.
- ``result``: ``run_id``, ``batch_id``, ``nodeid``, ``outcome``, ``when``,
  ``duration``, ``worker``, ``message`` (last line of the error, or None).
- ``worker``: ``hostname``, ``queues``, ``concurrency``, ``version``, ``pid``,
  ``state``, and for failed/recovered ``queue`` and ``reason``.
- ``recovery``: a recovery event as ``dtf.recovery`` records it: ``id``, ``run_id``,
  ``batch_id``, ``nodeid``, ``worker``, ``failure_class``, ``level``, ``strategy``,
  ``status``, ``detail``, ``tests``, ``started_at``, ``finished_at``.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "dtf"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook functions with this (``@hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- coordinator (the dtf CLI process) -------------------------------------


@hookspec
def dtf_coordinator_started(coordinator: dict[str, Any]) -> None:
    """A ``dtf run``/``submit``/``wait`` process starts handling a run. Coordinator."""


@hookspec
def dtf_coordinator_stopped(coordinator: dict[str, Any]) -> None:
    """That process is done (also after an error). Coordinator."""


@hookspec
def dtf_run_submitted(run: dict[str, Any]) -> None:
    """A run was stored and its work sent to the broker. Coordinator."""


@hookspec
def dtf_run_finished(run: dict[str, Any], summary: dict[str, Any]) -> None:
    """A run reached its verdict. Coordinator: the process that waited for it
    (``dtf run --wait`` or ``dtf wait RUN``); a run nobody waits for fires no
    ``dtf_run_finished``."""


@hookspec
def dtf_task_created(task: dict[str, Any]) -> None:
    """A batch or command task was stored with its run. Coordinator."""


@hookspec
def dtf_task_assigned(task: dict[str, Any]) -> None:
    """A batch or command task was sent to its queue. Coordinator."""


@hookspec
def dtf_task_cancelled(task: dict[str, Any]) -> None:
    """A task will not run: its run could not be sent to the broker (coordinator),
    or Celery revoked it (worker)."""


# --- worker (celery -A dtf worker) ------------------------------------------


@hookspec
def dtf_task_started(task: dict[str, Any]) -> None:
    """A worker starts a delivery of a batch or command (again after a retry). Worker."""


@hookspec
def dtf_task_completed(task: dict[str, Any]) -> None:
    """A batch or command ran to its end (its tests may have failed). Worker; not fired
    for a delivery that recovery retries or splits."""


@hookspec
def dtf_task_failed(task: dict[str, Any]) -> None:
    """A batch or command broke (infrastructure, not a test failure). Worker."""


@hookspec
def dtf_test_finished(result: dict[str, Any]) -> None:
    """One test's result was stored. Worker, once per stored result line."""


@hookspec
def dtf_worker_registered(worker: dict[str, Any]) -> None:
    """The worker wrote its registry row for the first time. Worker."""


@hookspec
def dtf_worker_disconnected(worker: dict[str, Any]) -> None:
    """The worker shut down cleanly (its row says offline). Worker."""


@hookspec
def dtf_worker_failed(worker: dict[str, Any]) -> None:
    """A health check failed and the worker stopped consuming ``worker["queue"]``
    (``reason`` says why), or recovery quarantined it (``quarantined: true``). Worker."""


@hookspec
def dtf_worker_recovered(worker: dict[str, Any]) -> None:
    """A failed health check passes again: the queue is consumed again. Worker."""


@hookspec
def dtf_recovery_started(recovery: dict[str, Any]) -> None:
    """Recovery from an infrastructure failure (crash, hang, lost worker...) chose a
    strategy and starts it. Worker (``dtf.recovery``)."""


@hookspec
def dtf_recovery_completed(recovery: dict[str, Any]) -> None:
    """That recovery worked: the tests ran. Worker (``dtf.recovery``)."""


@hookspec
def dtf_recovery_failed(recovery: dict[str, Any]) -> None:
    """That recovery did not work (or recovery gave up). Worker (``dtf.recovery``)."""


# --- plugin kinds: scheduler, executor, reporter ----------------------------


@hookspec(firstresult=True)
def dtf_schedule_batches(task: dict[str, Any], batches: list[dict[str, Any]]) -> list[int] | None:
    """Scheduler plugins: the order in which a task's batches are sent.

    ``batches`` holds, per batch in planned order, ``position``, ``queue``,
    ``hardware``, ``size``, ``estimated_s`` and ``nodeids``. Return a
    permutation of ``range(len(batches))`` (sending order), or None to keep the
    planner's. The first plugin returning a list decides; a list that is not a
    permutation is logged and ignored. Coordinator.
    """


@hookspec
def dtf_pytest_args(batch: dict[str, Any]) -> list[str] | None:
    """Executor plugins: extra arguments for the pytest child that runs ``batch``
    (e.g. ``["-p", "my_pytest_plugin"]``). ``batch`` holds ``run_id``, ``id``,
    ``workdir``, ``size`` and ``nodeids``. The lists of all plugins are appended
    after the task's own ``pytest_args``. Worker."""


@hookspec
def dtf_report_formats() -> dict[str, Any] | None:
    """Reporter plugins: extra report formats, ``{name: render}`` where
    ``render(run: dict) -> str`` gets the run's JSON report (``dtf results
    --format json``). Offered by ``dtf results --format NAME``. Coordinator."""
