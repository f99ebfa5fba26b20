"""A run's counts and state, read from the database (progress, status, finalize)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dtf.benchmarking.summary import BenchmarkProgress, benchmark_progress
from dtf.db.models import Batch, Run, RunTask, TestItem, TestResult
from dtf.errors import EXIT_CANCELLED, EXIT_INFRASTRUCTURE, EXIT_PASSED, EXIT_TEST_FAILURES

FAILING_OUTCOMES = ("failed", "error", "crashed", "timed_out", "out_of_memory")
#: passing subtests, counted apart as pytest's summary counts them
SUBTESTS_PASSED = "subtests passed"


def counted_as(outcome: str, subtest: str | bool) -> str:
    """The key a result line is counted under: its outcome, or SUBTESTS_PASSED."""
    return SUBTESTS_PASSED if subtest and outcome == "passed" else outcome


#: a test recovery gave up on (docs/recovery.md): the run ends as ``error``, exit 3
INFRA_OUTCOMES = ("infra_error",)
TERMINAL_RUN_STATES = ("passed", "failed", "error", "cancelled")
#: outcomes whose longrepr is dtf's own account (what happened first, output tails after)
_DTF_TOLD = ("crashed", "timed_out", "out_of_memory", "infra_error")


def failure_line(outcome: str, longrepr: str | None) -> str:
    """The line of a failure that says most: pytest's last line (the assertion) for a
    failed test, the first for one dtf ended (exit code, signal, timeout), never the
    ``--- stderr (tail) ---`` headings."""
    lines = [
        line.strip() for line in (longrepr or "").splitlines()
        if line.strip() and not line.strip().startswith("--- ")
    ]  # fmt: skip
    if not lines:
        return ""
    return lines[0] if outcome in _DTF_TOLD else lines[-1]


@dataclass
class RunSummary:
    """What a run has produced so far."""

    run_id: str
    status: str
    total: int  # test items planned
    finished: int  # test items with a result
    counts: dict[str, int] = field(default_factory=dict)  # results by outcome
    commands: list[RunTask] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # one line per batch/task that could not run
    error: str | None = None
    open_queues: set[str] = field(default_factory=set)  # queues with work not finished yet
    benchmarks: BenchmarkProgress | None = None  # None: the run has no benchmark task
    #: why test tasks stopped early (-x / --maxfail); their tests not run have no result
    stopped: list[str] = field(default_factory=list)
    #: who cancelled the run (dtf cancel), None if nobody did
    cancelled: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_RUN_STATES

    @property
    def failing(self) -> int:
        tests = sum(self.counts.get(o, 0) for o in FAILING_OUTCOMES)
        commands = sum(1 for c in self.commands if c.status == "timed_out" or c.exit_code)
        return tests + commands + (self.benchmarks.failing if self.benchmarks else 0)

    def verdict(self) -> str:
        """The status the run ends with: ``cancelled``, else ``error`` beats ``failed``
        beats ``passed``."""
        if self.cancelled:
            return "cancelled"
        if self.broken or self.error or any(self.counts.get(o) for o in INFRA_OUTCOMES):
            return "error"
        if self.finished < self.total and not self.stopped:
            return "error"  # tests that never got a result: the run is not complete
        return "failed" if self.failing else "passed"

    @property
    def exit_code(self) -> int:
        return {
            "passed": EXIT_PASSED,
            "failed": EXIT_TEST_FAILURES,
            "cancelled": EXIT_CANCELLED,
        }.get(self.status, EXIT_INFRASTRUCTURE)


def summarize(session: Session, run_id: str) -> RunSummary:
    """Read a run's summary; raises LookupError for an unknown run."""
    run = session.get(Run, run_id)
    if run is None:
        raise LookupError(run_id)
    counts: dict[str, int] = {}
    is_subtest = (TestResult.subtest != "").label("is_subtest")
    for outcome, subtest, number in session.execute(
        select(TestResult.outcome, is_subtest, func.count())
        .where(TestResult.run_id == run_id, TestResult.superseded.is_(False))
        .group_by(TestResult.outcome, is_subtest)
    ):
        key = counted_as(outcome, subtest)
        counts[key] = counts.get(key, 0) + number
    total, finished = session.execute(
        select(func.count(), func.count(TestItem.outcome)).filter_by(run_id=run_id)
    ).one()
    commands = list(session.scalars(select(RunTask).filter_by(run_id=run_id, type="command")))
    stopped = list(
        session.scalars(
            select(RunTask.stop_reason)
            .filter_by(run_id=run_id)
            .where(RunTask.stop_reason.is_not(None))
            .order_by(RunTask.position)
        )
    )
    broken = [
        f"batch {b.id} on queue {b.queue}: {b.error}"
        for b in session.scalars(select(Batch).filter_by(run_id=run_id, status="broken"))
    ] + [f"command task {c.position}: {c.output}" for c in commands if c.status == "broken"]
    open_queues = set(
        session.scalars(
            select(Batch.queue).filter(
                Batch.run_id == run_id, Batch.status.in_(("pending", "running"))
            )
        )
    ) | {c.queue for c in commands if c.status in ("pending", "running")}
    benchmarks = benchmark_progress(session, run_id)
    if benchmarks is not None:
        broken += benchmarks.broken
        open_queues |= benchmarks.open_queues
    return RunSummary(
        run_id=run_id,
        cancelled=run.cancel_reason,
        stopped=stopped,
        benchmarks=benchmarks,
        open_queues=open_queues,
        status=run.status,
        total=total,
        finished=finished,
        counts=counts,
        commands=commands,
        broken=broken,
        error=run.error,
    )


def failures(session: Session, run_id: str, limit: int = 50) -> list[TestResult]:
    """Results that make a run fail, in the order they happened."""
    return list(
        session.scalars(
            select(TestResult)
            .filter(
                TestResult.run_id == run_id,
                TestResult.outcome.in_(FAILING_OUTCOMES + INFRA_OUTCOMES),
                TestResult.superseded.is_(False),
            )
            .order_by(TestResult.id)
            .limit(limit)
        )
    )
