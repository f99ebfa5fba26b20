"""Work stealing at the end of a run: a batch hands its last tests to an idle worker slot.

Batches are planned from estimates; at the end of a run those are what decides how long
the last worker runs while the others wait (on a first run every estimate is a guess).
So while a batch runs, it looks every ``HANDOFF_CHECK_S`` (see
:mod:`dtf.executor.pytest_runner`) at its run's batches on its queue: when none is
waiting and fewer are running than the queue has worker slots, a slot is idle. The batch
then gives the last of the tests its child has not started to a new batch on the same
queue, which the idle slot takes: as many as make both end together, counting the new
batch's start-up for its share of the modules (this one has collected them already).
The run's chord callback waits for such batches before it finalizes
(:mod:`dtf.tasks.finalize`).

Slots of a queue: the concurrency of the live workers that consume it, read once per
batch. Batches of other runs on a shared queue are not counted: a slot they keep busy
may make a handed-off batch wait in the queue, which costs its start-up, nothing else.
Exclusive batches never hand off; ``DTF_HANDOFF=0`` in a worker's environment turns it off.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from statistics import fmean

from sqlalchemy import func, select

from dtf.db.models import Batch
from dtf.db.session import session_scope
from dtf.executor.pytest_runner import Handoff
from dtf.scheduling.durations import UNKNOWN_TEST_S, module_of
from dtf.tasks import store

logger = logging.getLogger(__name__)

#: What handing off must save beyond the new batch's start-up to be worth it (seconds).
MIN_GAIN_S = 0.5
#: The least a new batch's start-up is taken to cost (seconds).
MIN_STARTUP_S = 0.3


class BatchHandoff(Handoff):
    """Hands a batch's tail to another slot of its queue when one is idle."""

    def __init__(
        self,
        db_url: str,
        work: store.BatchWork,
        estimates: dict[str, float],
        slots: int,
        priority: int | None = None,
    ) -> None:
        """``priority``: the message priority this batch came with (the broker's number),
        which the handed-off tail is sent with too."""
        self.db_url = db_url
        self.priority = priority
        self.work = work
        self.estimates = estimates
        self.slots = slots
        self.default_s = (sum(estimates.values()) / len(estimates)) if estimates else UNKNOWN_TEST_S

    def wanted(self) -> bool:
        if self.slots < 2:
            return False
        with session_scope(self.db_url) as session:
            states = dict(
                session.execute(
                    select(Batch.status, func.count())
                    .filter_by(run_id=self.work.run_id, queue=self.work.queue)
                    .where(Batch.status.in_(("pending", "running")))
                    .group_by(Batch.status)
                ).all()
            )
        return not states.get("pending") and states.get("running", 0) < self.slots

    def first_to_hand(
        self, pending: list[str], measured: Mapping[str, float], startup_s: float
    ) -> str | None:
        """The first of the last tests of ``pending`` to give away, so that this batch and
        the new one finish together, if that saves more than MIN_GAIN_S.

        This batch has collected its tests; the new one pays a start-up for its share
        of them (this batch's start-up, scaled by the share of its tests handed over:
        most of a start-up is collecting the tests' modules, at least MIN_STARTUP_S).
        """
        by_module = _module_means(measured)
        seconds = [self._estimate(nodeid, by_module) for nodeid in pending]
        total = sum(seconds)
        everyone = len(pending) + len(measured)

        def finish(first: int, tail: float) -> float:
            """When the later of the two ends, handing over from index ``first`` on."""
            startup = max(MIN_STARTUP_S, startup_s * (len(pending) - first) / everyone)
            return max(total - tail, tail + startup)

        tail = 0.0
        best, best_finish = None, total
        for index in range(len(pending) - 1, -1, -1):
            tail += seconds[index]
            ends = finish(index, tail)
            if ends < best_finish:
                best, best_finish = index, ends
            if tail >= total - tail:  # past the middle: the new batch only gets later
                break
        if best is None or total - best_finish <= MIN_GAIN_S:
            return None
        return pending[best]

    def _estimate(self, nodeid: str, module_means: Mapping[str, float]) -> float:
        """History first; else what this batch's tests of the same module took; else the
        planner's guess. (Not what other modules took: a module not reached yet is where a
        suite's slow tests often are.)"""
        if nodeid in self.estimates:
            return self.estimates[nodeid]
        return module_means.get(module_of(nodeid), self.default_s)

    def hand(self, nodeids: list[str]) -> None:
        from dtf.tasks.execute import batch_signature

        batch_id, time_limit = store.hand_off(
            self.db_url,
            self.work.batch_id,
            nodeids,
            sum(self.estimates.get(n, self.default_s) for n in nodeids),
        )
        try:
            queue = self.work.queue
            shown = f"batch={batch_id} queue={queue} (handed off)"
            batch_signature(
                batch_id, queue, time_limit, argsrepr=shown, priority=self.priority
            ).apply_async()
        except Exception:
            store.take_back(self.db_url, self.work.batch_id, batch_id)
            raise
        logger.info(
            "batch %s: handed %d tests to batch %s (a slot of %s is idle)",
            self.work.batch_id, len(nodeids), batch_id, self.work.queue,
        )  # fmt: skip


def _module_means(measured: Mapping[str, float]) -> dict[str, float]:
    by_module: dict[str, list[float]] = defaultdict(list)
    for nodeid, seconds in measured.items():
        by_module[module_of(nodeid)].append(seconds)
    return {module: fmean(values) for module, values in by_module.items()}


def slots_of(db_url: str, queue: str) -> int:
    """Worker slots that take work from ``queue``: the live workers' concurrency."""
    from dtf.config import worker_queue
    from dtf.submission import live_workers

    return sum(
        worker.concurrency
        for worker in live_workers(db_url)
        if queue in worker.healthy_queues or queue == worker_queue(worker.hostname)
    )


def estimates_of(db_url: str, work: store.BatchWork) -> dict[str, float]:
    """Expected seconds of the batch's tests, from the duration history."""
    from dtf.scheduling.durations import DurationHistory

    if not work.suite:
        return {}
    with session_scope(db_url) as session:
        history = DurationHistory.load(session, work.suite, work.hardware or "cpu")
    if not history.known:
        return {}
    return {nodeid: history.estimate(nodeid) for nodeid in work.items}
