"""A Prometheus ``/metrics`` endpoint on each worker (``DTF_METRICS_PORT``).

Celery's prefork pool runs tasks in child processes, so the counters live in
prometheus_client's multiprocess mode: each process writes its values to files
in one directory per worker (``PROMETHEUS_MULTIPROC_DIR``), and the worker's main
process serves their sum. ``setup(app)`` (the ``dtf.worker`` entry point, run at
``celeryd_init`` before the pool forks) prepares the directory and starts the
HTTP server; the hooks in :mod:`dtf.integrations.metrics.plugin` record into it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from celery import Celery, signals

logger = logging.getLogger("dtf.integrations.metrics")

PORT_ENV = "DTF_METRICS_PORT"
ADDR_ENV = "DTF_METRICS_ADDR"
#: set by ``setup`` in the worker's environment (inherited by its pool): metrics are on
DIR_ENV = "DTF_METRICS_DIR"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_enabled() -> bool:
    """True in a worker process (main or pool child) that serves ``/metrics``."""
    return bool(os.environ.get(DIR_ENV))


def metrics_port(env: dict[str, str] | None = None) -> int | None:
    """The port from ``DTF_METRICS_PORT``, None when unset; ValueError naming it when bad."""
    value = (os.environ if env is None else env).get(PORT_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{PORT_ENV}: expected a TCP port 1..65535, got {value!r}")
    return int(value)


def setup(app: Celery) -> None:
    """Start the worker's ``/metrics`` server when ``DTF_METRICS_PORT`` is set; never raises."""
    try:
        port = metrics_port()
    except ValueError as exc:
        logger.error("dtf: no /metrics endpoint: %s", exc)
        return
    if port is None:
        return
    addr = os.environ.get(ADDR_ENV, "").strip() or "0.0.0.0"
    directory = tempfile.mkdtemp(prefix="dtf-metrics-")
    _use_multiprocess_dir(directory)
    try:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        # Several workers on one host need a port each; the worker itself goes on.
        logger.error("dtf: no /metrics endpoint on %s:%s: %s", addr, port, exc)
        os.environ.pop(DIR_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
        return
    signals.worker_process_shutdown.connect(
        _process_gone, weak=False, dispatch_uid="dtf-metrics-process-gone"
    )
    signals.worker_shutdown.connect(
        lambda **kwargs: shutil.rmtree(directory, ignore_errors=True),
        weak=False,
        dispatch_uid="dtf-metrics-cleanup",
    )
    logger.info("dtf: Prometheus metrics on http://%s:%s/metrics", addr, port)


def _use_multiprocess_dir(directory: str) -> None:
    os.environ[MULTIPROC_ENV] = directory
    os.environ[DIR_ENV] = directory
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        # prometheus_client picks its value class at import; it was imported before
        # the directory was known, so pick again (what it does at import).
        values.ValueClass = values.get_value_class()


def _process_gone(pid: int | None = None, **kwargs: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid or os.getpid())
