"""Prometheus as dtf plugins: worker instruments behind ``/metrics``, and a Pushgateway push.

``WorkerMetrics`` records batches, commands, tests and recoveries in a worker
that serves ``/metrics`` (``DTF_METRICS_PORT``, see
:mod:`dtf.integrations.metrics.worker`) and does nothing elsewhere.
``PushgatewayMetrics`` pushes the run's metrics when a run finishes
(``DTF_PUSHGATEWAY_URL``). ``dtf plugins`` says whether each is set up
(``dtf_configured``), from the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dtf.integrations.metrics.worker import PORT_ENV, metrics_enabled, metrics_port
from dtf.integrations.settings import ConfigError, Options

from dtf.plugins import hookimpl
from dtf.plugins.outcomes import record_outcome

#: the Pushgateway's URL (a secret: it may hold credentials)
URL_ENV = "DTF_PUSHGATEWAY_URL"


def _instruments():
    from dtf.integrations.metrics import instruments

    return instruments


class WorkerMetrics:
    """Counts and times what the worker does, for its ``/metrics`` endpoint."""

    dtf_plugin_kind = "monitoring"
    dtf_plugin_name = "prometheus"

    def dtf_configured(self, env: Mapping[str, str]) -> bool | str:
        """Set up where ``DTF_METRICS_PORT`` is: a worker started with it serves ``/metrics``."""
        try:
            port = metrics_port(dict(env))
        except ValueError as exc:
            return str(exc)
        return True if port is not None else f"set {PORT_ENV} (in the workers' environment)"

    @hookimpl
    def dtf_task_started(self, task: dict[str, Any]) -> None:
        if metrics_enabled():
            _instruments().task_started(task)

    @hookimpl
    def dtf_task_completed(self, task: dict[str, Any]) -> None:
        if metrics_enabled():
            _instruments().task_finished(task, "completed")

    @hookimpl
    def dtf_task_failed(self, task: dict[str, Any]) -> None:
        if metrics_enabled():
            _instruments().task_finished(task, "broken")

    @hookimpl
    def dtf_test_finished(self, result: dict[str, Any]) -> None:
        if metrics_enabled():
            _instruments().result_stored(result)

    @hookimpl
    def dtf_recovery_started(self, recovery: dict[str, Any]) -> None:
        if metrics_enabled():
            _instruments().recovery("started")

    @hookimpl
    def dtf_recovery_completed(self, recovery: dict[str, Any]) -> None:
        if metrics_enabled():
            _instruments().recovery("completed")

    @hookimpl
    def dtf_recovery_failed(self, recovery: dict[str, Any]) -> None:
        if metrics_enabled():
            _instruments().recovery("failed")

    @hookimpl
    def dtf_worker_failed(self, worker: dict[str, Any]) -> None:
        if metrics_enabled():
            _instruments().health_failed(worker)


class PushgatewayMetrics:
    """``DTF_PUSHGATEWAY_URL``: the finished run's metrics, pushed to a Pushgateway."""

    dtf_plugin_kind = "monitoring"
    dtf_plugin_name = "pushgateway"
    task_keys = ("job", "grouping")

    @property
    def dtf_settings_keys(self) -> dict[str, tuple[str, ...]]:
        return {self.dtf_plugin_name: self.task_keys}

    def dtf_configured(self, env: Mapping[str, str]) -> bool | str:
        options = Options(self.dtf_plugin_name, env=env)
        if not options.secret(URL_ENV):
            return f"set {URL_ENV}"
        try:
            grouping_key(options)
        except ConfigError as exc:
            return str(exc)
        return True

    @hookimpl
    def dtf_run_finished(self, run: dict[str, Any], summary: dict[str, Any]) -> None:
        options = Options.for_run(self.dtf_plugin_name, run)
        options.check_keys(self.task_keys)
        gateway = options.secret(URL_ENV)
        if not gateway:
            return
        from dtf.integrations.http import http_session
        from dtf.integrations.metrics.pushgateway import DEFAULT_JOB, push_run_metrics, run_registry

        job = options.text("job", "DTF_PUSHGATEWAY_JOB", DEFAULT_JOB) or DEFAULT_JOB
        session = http_session()
        user, password = options.text(None, "DTF_PUSHGATEWAY_USER"), None
        if user:
            password = options.secret("DTF_PUSHGATEWAY_PASSWORD") or ""
            session.auth = (user, password)
        push_run_metrics(
            gateway,
            run_registry(run, summary),
            job=job,
            grouping_key=grouping_key(options),
            session=session,
            password=password,
        )
        record_outcome(run["id"], "pushgateway", ok=True, kind=self.dtf_plugin_kind)


def grouping_key(options: Options) -> dict[str, str]:
    """Labels beside ``job`` that name the group: ``DTF_PUSHGATEWAY_GROUPING=k=v,k2=v2``
    or ``dtf.integrations.pushgateway.grouping: {k: v}`` in the task file."""
    task_value = options.task.get("grouping")
    if isinstance(task_value, dict):
        return {str(k): str(v) for k, v in task_value.items()}
    if task_value is not None:
        raise ConfigError("task file: integrations.pushgateway.grouping: expected an object")
    key: dict[str, str] = {}
    for part in options.words(None, "DTF_PUSHGATEWAY_GROUPING"):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"DTF_PUSHGATEWAY_GROUPING: bad entry {part!r}: expected LABEL=VALUE,..."
            )
        key[name.strip()] = value.strip()
    return key
