"""The Celery canvas of a run: chord(group(header tasks on hardware queues), finalize_run)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from celery import chord
from celery.canvas import Signature

from dtf.config import CONTROL_QUEUE, VISIBILITY_TIMEOUT_S, message_priority

#: A batch's hard time limit stays under the broker's visibility timeout, so
#: a hung batch is killed before its message would be handed out twice.
MAX_BATCH_TIME_LIMIT = VISIBILITY_TIMEOUT_S - 900
#: Per batch, on top of its tests' timeouts: process start, imports, collection.
BATCH_OVERHEAD_S = 120.0


@dataclass(frozen=True)
class HeaderTask:
    """One header entry: a batch of tests, or a command task."""

    kind: str  # "batch" | "command" | "benchmark" (key: the job id)
    key: str  # the batch id, or the run task id of a command
    queue: str
    #: dtf's 0..9, 9 most urgent (the message carries message_priority of it)
    priority: int
    time_limit: float
    #: the batch runs alone on its worker (see dtf/executor/exclusive.py)
    exclusive: bool = False
    #: test items in a batch (0 for a command): shown in Flower
    tests: int = 0


def header_signature(entry: HeaderTask, run_id: str = "", label: str = "") -> Signature:
    """The task of one header entry; ``label`` (``batch 2/5``) names it in Flower."""
    from dtf.tasks.execute import execute_batch, execute_command

    hard = min(entry.time_limit + BATCH_OVERHEAD_S, MAX_BATCH_TIME_LIMIT)
    options = {
        "queue": entry.queue,
        "priority": message_priority(entry.priority, execute_batch.app.conf.broker_url),
        "time_limit": hard,
        "soft_time_limit": hard - 30,
        "argsrepr": shown_args(entry, run_id, label),
    }
    if entry.kind == "batch":
        kwargs = {"exclusive": True} if entry.exclusive else {}
        return execute_batch.si(entry.key, **kwargs).set(
            task_id=entry.key, kwargsrepr=repr(kwargs), **options
        )
    if entry.kind == "benchmark":
        from dtf.tasks.benchmark import execute_benchmark

        return execute_benchmark.si(entry.key).set(task_id=entry.key, **options)
    return execute_command.si(int(entry.key)).set(kwargsrepr="{}", **options)


def shown_args(entry: HeaderTask, run_id: str, label: str) -> str:
    """What Flower, task events and `celery inspect` show instead of the bare batch id:
    ``run=3f2a… batch=2/5 queue=cuda tests=12``."""
    parts = [f"run={run_id}", label.replace(" ", "=", 1), f"queue={entry.queue}"]
    if entry.kind == "batch":
        parts.append(f"tests={entry.tests}")
    return " ".join(part for part in parts if part and not part.endswith("="))


def run_canvas(
    run_id: str, headers: list[HeaderTask], control_queue: str = CONTROL_QUEUE
) -> Signature:
    """The chord for a run; ``finalize_run`` runs once after every header task returned,
    on ``control_queue`` (a local worker's own queue when only it serves the run)."""
    from dtf.tasks.finalize import finalize_run

    # The callback gets every header's result prepended: show the run, not that list.
    callback = finalize_run.s(run_id).set(
        queue=control_queue,
        task_id=f"finalize-{run_id}",
        argsrepr=f"run={run_id} headers={len(headers)}",
        kwargsrepr="{}",
    )
    totals = Counter(h.kind for h in headers)
    seen: Counter[str] = Counter()
    signatures = []
    for header in headers:
        seen[header.kind] += 1
        label = f"{header.kind} {seen[header.kind]}/{totals[header.kind]}"
        signatures.append(header_signature(header, run_id, label))
    return chord(signatures, callback)
