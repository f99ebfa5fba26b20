"""What a person waiting for a run is told about its recoveries.

The recovery layer records each action as a ``RecoveryEvent`` (dtf/recovery/table.py);
these turn the run's batch-level ones (a lost worker, a lost message, a batch that
broke) into lines for ``dtf run`` / ``dtf wait`` as they happen, a line for the final
summary, and a list with timestamps for ``dtf status`` and the JSON report. A test's
own recoveries (a crash, a hang) show as its outcome.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.db.models import Batch, RecoveryEvent
from dtf.recovery import classes as fc
from dtf.recovery.table import event_dict

#: What the summary calls each batch-level class, once and many times.
_NOUNS = {
    fc.WORKER_LOST: ("lost worker", "lost workers"),
    fc.BROKER_UNREACHABLE: ("lost message", "lost messages"),
}


def recoveries(session: Session, run_id: str, after_id: int = 0) -> list[dict[str, Any]]:
    """The run's recovery actions (with the queue their batch is on now), oldest first."""
    rows = session.execute(
        select(RecoveryEvent, Batch.queue)
        .outerjoin(Batch, Batch.id == RecoveryEvent.batch_id)
        .where(RecoveryEvent.run_id == run_id, RecoveryEvent.id > after_id)
        .order_by(RecoveryEvent.id)
    ).all()
    return [{**event_dict(event), "queue": queue} for event, queue in rows]


def notice_lines(event: dict[str, Any]) -> list[str]:
    """What happened and what dtf did about it, for a batch-level recovery; [] for a
    test's own."""
    if event["nodeid"] is not None:
        return []
    tests = f"{event['tests']} test{'s' if event['tests'] != 1 else ''}"
    detail = event["detail"] or event["failure_class"]
    if event["failure_class"] == fc.WORKER_LOST:
        noticed = f"worker {event['worker'] or '?'} lost ({detail}) while running {tests}"
    elif event["failure_class"] == fc.BROKER_UNREACHABLE:
        noticed = f"the broker lost the message of a batch of {tests} ({detail})"
    else:
        where = f" on {event['worker']}" if event["worker"] else ""
        noticed = f"a batch of {tests}{where}: {event['failure_class']} ({detail})"
    if event["strategy"] == "give_up":
        return [noticed, f"gave up on {tests}: they end as infra_error"]
    target = f" to queue {event['queue']}" if event["queue"] else ""
    return [noticed, f"sent {tests} again{target} ({event['strategy']})"]


class RecoveryNotices:
    """Each call: the lines for the run's batch-level recoveries recorded since the last."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seen = 0

    def __call__(self, session: Session) -> list[str]:
        lines = []
        for event in recoveries(session, self.run_id, self.seen):
            self.seen = event["id"]
            lines += notice_lines(event)
        return lines


def summary_line(events: list[dict[str, Any]]) -> str | None:
    """``recovered: 1 lost worker (3 tests), ...``; None without any."""
    counts: Counter[str] = Counter()
    tests: Counter[str] = Counter()
    for event in events:
        if event["nodeid"] is None:
            counts[event["failure_class"]] += 1
            tests[event["failure_class"]] += event["tests"]
    if not counts:
        return None
    parts = []
    for failure_class, n in counts.items():
        default = (f"{failure_class} batch", f"{failure_class} batches")
        one, many = _NOUNS.get(failure_class, default)
        parts.append(f"{n} {one if n == 1 else many} ({tests[failure_class]} tests)")
    return "recovered: " + ", ".join(parts)
