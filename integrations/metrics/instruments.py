"""The worker's Prometheus instruments, fed by dtf's worker hooks.

Imported only in a worker that serves ``/metrics`` (after
:func:`dtf.integrations.metrics.worker.setup` chose multiprocess mode).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

TASK_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
TEST_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

TASKS_STARTED = Counter(
    "dtf_tasks_started_total",
    "Batches and commands this worker started, by queue",
    ["kind", "queue", "hardware"],
)
TASKS_FINISHED = Counter(
    "dtf_tasks_finished_total",
    "Batches and commands this worker finished: completed (ran to the end) or broken",
    ["kind", "queue", "hardware", "status"],
)
TASK_DURATION = Histogram(
    "dtf_task_duration_seconds",
    "Wall time of a batch or command on this worker",
    ["kind", "queue"],
    buckets=TASK_BUCKETS,
)
TASKS_IN_PROGRESS = Gauge(
    "dtf_tasks_in_progress",
    "Batches and commands running on this worker now, by queue",
    ["kind", "queue"],
    multiprocess_mode="livesum",
)
TESTS = Counter(
    "dtf_tests_total",
    "Test results this worker stored, by outcome and queue",
    ["outcome", "queue"],
)
TEST_DURATION = Histogram(
    "dtf_test_duration_seconds",
    "Duration of a test (setup, call and teardown) on this worker",
    ["queue"],
    buckets=TEST_BUCKETS,
)
RECOVERIES = Counter(
    "dtf_recoveries_total",
    "Batches run again after an earlier attempt was lost: started, completed, failed",
    ["status"],
)
HEALTH_FAILURES = Counter(
    "dtf_worker_health_failures_total",
    "Health checks that failed and drained a queue of this worker",
    ["queue"],
)

#: (kind, id) -> (queue, hardware, monotonic start) of the tasks running in this process
_running: dict[tuple[str, str], tuple[str, str, float]] = {}
#: batch id -> queue, so a test result (which names its batch) is counted under its queue
_batch_queue: dict[str, str] = {}


def task_started(task: dict[str, Any]) -> None:
    kind, queue, hardware = _labels(task)
    TASKS_STARTED.labels(kind, queue, hardware).inc()
    TASKS_IN_PROGRESS.labels(kind, queue).inc()
    _running[(kind, str(task.get("id")))] = (queue, hardware, time.monotonic())
    if kind == "batch":
        _batch_queue[str(task.get("id"))] = queue


def task_finished(task: dict[str, Any], status: str) -> None:
    kind, queue, hardware = _labels(task)
    TASKS_FINISHED.labels(kind, queue, hardware, status).inc()
    started = _running.pop((kind, str(task.get("id"))), None)
    if started is not None:
        TASKS_IN_PROGRESS.labels(kind, started[0]).dec()
        TASK_DURATION.labels(kind, started[0]).observe(time.monotonic() - started[2])
    if kind == "batch":
        _batch_queue.pop(str(task.get("id")), None)


def result_stored(result: dict[str, Any]) -> None:
    queue = _batch_queue.get(str(result.get("batch_id")), "unknown")
    TESTS.labels(str(result.get("outcome") or "unknown"), queue).inc()
    duration = result.get("duration")
    if isinstance(duration, (int, float)) and duration >= 0:
        TEST_DURATION.labels(queue).observe(duration)


def recovery(status: str) -> None:
    RECOVERIES.labels(status).inc()


def health_failed(worker: dict[str, Any]) -> None:
    HEALTH_FAILURES.labels(str(worker.get("queue") or "unknown")).inc()


def _labels(task: dict[str, Any]) -> tuple[str, str, str]:
    return (
        str(task.get("kind") or "batch"),
        str(task.get("queue") or "unknown"),
        str(task.get("hardware") or "none"),
    )
