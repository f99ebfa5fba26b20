"""Duration history: an exponentially weighted mean per (suite, hardware, test id).

Every finished run updates it (``record_run``); planning reads it to balance
batches (``DurationHistory``). A test never seen before is estimated from its
module's tests, then from the suite's, then from a fixed guess.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean, median

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dtf.db.models import Attempt, Batch, RunTask, TestDuration, TestItem, TestResult, utcnow

#: Weight of the newest sample: recent runs matter most, one outlier does not rule.
ALPHA = 0.3
#: Guess for a test of a suite with no history at all (seconds).
UNKNOWN_TEST_S = 0.1
#: Guess for a batch's start-up (pytest child, imports, collection) before one was measured.
UNKNOWN_STARTUP_S = 0.2
#: Recent batches whose start-up gives the suite's typical one (their median).
STARTUP_SAMPLES = 20
#: Outcomes whose duration says nothing about the next run (a timed-out test's
#: duration is its timeout: a fair guess for next time, so it counts).
_NOT_DURATIONS = ("crashed",)


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class DurationHistory:
    """Known mean durations of one suite on one kind of hardware."""

    def __init__(self, known: dict[str, float], startup_s: float = UNKNOWN_STARTUP_S) -> None:
        self.known = known
        #: a batch's typical start-up on this hardware (seconds)
        self.startup_s = startup_s
        by_module: dict[str, list[float]] = defaultdict(list)
        for nodeid, seconds in known.items():
            by_module[module_of(nodeid)].append(seconds)
        self.module_means = {module: fmean(values) for module, values in by_module.items()}
        self.suite_mean = fmean(known.values()) if known else UNKNOWN_TEST_S

    @classmethod
    def load(cls, session: Session, suite: str, hardware: str) -> DurationHistory:
        rows = session.execute(
            select(TestDuration.nodeid, TestDuration.mean_s).filter_by(
                suite=suite, hardware=hardware
            )
        )
        startups = session.scalars(
            select(Attempt.startup_s)
            .join(Batch, Batch.id == Attempt.batch_id)
            .join(RunTask, RunTask.id == Batch.task_id)
            .where(
                RunTask.suite == suite,
                Batch.hardware == hardware,
                Attempt.startup_s.is_not(None),
            )
            .order_by(Attempt.id.desc())
            .limit(STARTUP_SAMPLES)
        ).all()
        return cls(dict(rows.all()), median(startups) if startups else UNKNOWN_STARTUP_S)

    def estimate(self, nodeid: str) -> float:
        if nodeid in self.known:
            return self.known[nodeid]
        return self.module_means.get(module_of(nodeid), self.suite_mean)


def record_run(session: Session, run_id: str) -> int:
    """Fold a finished run's test durations into the history; returns tests updated."""
    measured = session.execute(
        select(RunTask.suite, Batch.hardware, TestResult.nodeid, func.sum(TestResult.duration))
        .select_from(TestResult)
        .join(TestItem, TestItem.id == TestResult.item_id)
        .join(Batch, Batch.id == TestItem.batch_id)
        .join(RunTask, RunTask.id == Batch.task_id)
        .where(
            TestResult.run_id == run_id,
            TestResult.outcome.not_in(_NOT_DURATIONS),
            RunTask.suite.is_not(None),
        )
        .group_by(RunTask.suite, Batch.hardware, TestResult.nodeid)
    ).all()
    return _fold(session, measured)


def _fold(session: Session, measured) -> int:
    keys = {(suite, hardware or "cpu") for suite, hardware, _, _ in measured}
    existing = {}
    for suite, hardware in keys:
        for row in session.scalars(select(TestDuration).filter_by(suite=suite, hardware=hardware)):
            existing[(suite, hardware, row.nodeid)] = row
    now = utcnow()
    for suite, hardware, nodeid, seconds in measured:
        key = (suite, hardware or "cpu", nodeid)
        row = existing.get(key)
        if row is None:
            session.add(
                TestDuration(suite=key[0], hardware=key[1], nodeid=nodeid, mean_s=seconds,
                             samples=1, updated_at=now)
            )  # fmt: skip
        else:
            row.mean_s = ALPHA * seconds + (1 - ALPHA) * row.mean_s
            row.samples += 1
            row.updated_at = now
    return len(measured)
