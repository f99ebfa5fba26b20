"""A test's recent history in dtf's database: how many runs in a row it has failed.

A test's history is its results in the runs of the same suite (the directory a run
was submitted from), newest first. A run where the test failed (failed, error,
crashed, timed out, out of memory) extends the streak; a run where it passed (also
xfailed, xpassed, or flaky: failed, then passed on a rerun) ends it; a run where it
was skipped, given up on by recovery (infra_error) or not selected is looked through.
Earlier attempts of a rerun test (superseded results) are not its outcome.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dtf.db.models import Run, RunTask, TestItem, TestResult
from dtf.summary import FAILING_OUTCOMES, INFRA_OUTCOMES, TERMINAL_RUN_STATES

#: Outcomes that say nothing about whether the test works: it did not run, or the
#: infrastructure gave up on it.
NEUTRAL_OUTCOMES = ("skipped", *INFRA_OUTCOMES)
_CHUNK = 500


@dataclass
class FailingTest:
    """A test that failed in a run, with the length of its current failing streak."""

    nodeid: str
    suite: str
    outcome: str
    #: the failure text of this run (pytest's long representation, bounded)
    longrepr: str | None
    #: how many runs in a row (this one included) it failed
    streak: int = 1
    #: the ids of those runs, newest first
    runs: list[str] = field(default_factory=list)

    @property
    def message(self) -> str | None:
        """The last non-empty line of the failure (``E   AssertionError: ...``)."""
        lines = [line.strip() for line in (self.longrepr or "").splitlines() if line.strip()]
        return lines[-1] if lines else None


def _suite_key():
    return func.coalesce(RunTask.suite, RunTask.workdir)


def failing_tests(session: Session, run_id: str) -> list[FailingTest]:
    """The tests that failed in ``run_id``, one per test id and suite, in result order."""
    rows = session.execute(
        select(TestResult.nodeid, TestResult.outcome, TestResult.longrepr, _suite_key())
        .join(TestItem, TestItem.id == TestResult.item_id)
        .join(RunTask, RunTask.id == TestItem.task_id)
        .where(
            TestResult.run_id == run_id,
            TestResult.outcome.in_(FAILING_OUTCOMES),
            TestResult.superseded.is_(False),
        )
        .order_by(TestResult.id)
    ).all()
    found: dict[tuple[str, str], FailingTest] = {}
    for nodeid, outcome, longrepr, suite in rows:
        found.setdefault((suite, nodeid), FailingTest(nodeid, suite, outcome, longrepr))
    return list(found.values())


def with_streaks(
    session: Session, run_id: str, tests: list[FailingTest], *, window: int = 50
) -> list[FailingTest]:
    """Fill in each test's failing streak up to ``run_id``, over at most ``window`` runs."""
    current = session.get(Run, run_id)
    if current is None:
        raise LookupError(run_id)
    by_suite: dict[str, list[FailingTest]] = defaultdict(list)
    for test in tests:
        by_suite[test.suite].append(test)
    for suite, suite_tests in by_suite.items():
        runs = _recent_runs(session, suite, current, window)
        outcomes = _outcomes(session, suite, runs, [t.nodeid for t in suite_tests])
        for test in suite_tests:
            test.streak, test.runs = 0, []
            for run in runs:
                seen = outcomes.get((run, test.nodeid))
                if not seen or seen <= set(NEUTRAL_OUTCOMES):
                    continue
                if not seen & set(FAILING_OUTCOMES):
                    break
                test.streak += 1
                test.runs.append(run)
    return tests


def _recent_runs(session: Session, suite: str, current: Run, window: int) -> list[str]:
    """Ids of the suite's finished runs up to ``current`` (included), newest first."""
    rows = session.execute(
        select(Run.id)
        .join(RunTask, RunTask.run_id == Run.id)
        .where(
            _suite_key() == suite,
            Run.created_at <= current.created_at,
            (Run.status.in_(TERMINAL_RUN_STATES)) | (Run.id == current.id),
        )
        .group_by(Run.id, Run.created_at)
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(window)
    ).all()
    ids = [row[0] for row in rows]
    # The current run first even when another run has the same timestamp.
    if current.id in ids:
        ids.remove(current.id)
    return [current.id, *ids]


def _outcomes(
    session: Session, suite: str, runs: list[str], nodeids: Iterable[str]
) -> dict[tuple[str, str], set[str]]:
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    nodeids = list(nodeids)
    for start in range(0, len(nodeids), _CHUNK):
        rows = session.execute(
            select(TestResult.run_id, TestResult.nodeid, TestResult.outcome)
            .join(TestItem, TestItem.id == TestResult.item_id)
            .join(RunTask, RunTask.id == TestItem.task_id)
            .where(
                TestResult.run_id.in_(runs),
                TestResult.nodeid.in_(nodeids[start : start + _CHUNK]),
                TestResult.superseded.is_(False),
                _suite_key() == suite,
            )
        ).all()
        for run, nodeid, outcome in rows:
            seen[(run, nodeid)].add(outcome)
    return seen
