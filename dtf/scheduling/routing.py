"""Route work to a queue: the first acceptable hardware kind with a live worker that fits.

A kind's queue is used when every live worker consuming it satisfies the
requirements; when only some do, the work goes to the own queue of the
least loaded one that does, so a 16 GB test never lands on an 8 GB GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dtf.config import worker_queue
from dtf.inventory import Inventory, unmet

#: Requirement fields that do not constrain which worker may run a test.
_NOT_ROUTING = ("hardware", "priority", "timeout", "exclusive", "testrail")


@dataclass(frozen=True)
class LiveWorker:
    """What routing needs to know of a registered, live worker."""

    hostname: str
    healthy_queues: frozenset[str]
    inventory: Inventory
    concurrency: int = 1
    load: float = 0.0  # active tasks per slot
    #: takes work only from its own queue (dtf run's local workers)
    private: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LiveWorker:
        concurrency = max(1, row.get("concurrency") or 1)
        return cls(
            hostname=row["hostname"],
            healthy_queues=frozenset(row.get("healthy_queues") or ()),
            inventory=Inventory.from_dict(row["inventory"]),
            concurrency=concurrency,
            load=(row.get("active_tasks") or 0) / concurrency,
        )


class Unroutable(Exception):
    """No live worker can take this work; the message names the unmet requirement."""

    def __init__(self, message: str, kind: str = "cpu") -> None:
        super().__init__(message)
        self.kind = kind  # the most preferred kind, for "start a worker with -Q kind"


def describe(requirements: Mapping[str, Any]) -> str:
    """``cuda or cpu with min_gpu_memory_gb=16`` for messages."""
    kinds = " or ".join(requirements.get("hardware") or ["cpu"])
    extra = [
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in requirements.items()
        if key not in _NOT_ROUTING and value is not None
    ]
    return kinds + (f" with {', '.join(extra)}" if extra else "")


def choose_queue(requirements: Mapping[str, Any], workers: Sequence[LiveWorker]) -> str:
    """The queue for work with ``requirements``, or Unroutable saying what is missing."""
    return choose_route(requirements, workers)[0]


def choose_route(requirements: Mapping[str, Any], workers: Sequence[LiveWorker]) -> tuple[str, str]:
    """``(queue, hardware kind)`` for work with ``requirements``; Unroutable if none fits."""
    reasons: list[str] = []
    for kind in requirements.get("hardware") or ["cpu"]:
        consumers = [w for w in workers if kind in w.healthy_queues]
        if not consumers:
            reasons.append(f"no live worker serves '{kind}'")
            continue
        fits = [w for w in consumers if _unmet(w, kind, requirements) is None]
        if len(fits) == len(consumers) and not any(w.private for w in consumers):
            return kind, kind
        if fits:
            return worker_queue(min(fits, key=lambda w: (w.load, w.hostname)).hostname), kind
        why = _unmet(consumers[0], kind, requirements)
        reasons.append(f"'{kind}' workers fall short ({consumers[0].hostname}: {why})")
    kinds = requirements.get("hardware") or ["cpu"]
    raise Unroutable(f"needs {describe(requirements)}, but {'; '.join(reasons)}", kinds[0])


def _unmet(worker: LiveWorker, kind: str, requirements: Mapping[str, Any]) -> str | None:
    return unmet(worker.inventory, kind, requirements, serves_kind=True)
