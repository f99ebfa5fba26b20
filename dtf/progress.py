"""Follow a run in the database until it ends: a progress bar on a terminal, plain lines
otherwise, and with ``verbose`` one line per test as it finishes."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dtf.benchmarking.summary import benchmarks_part
from dtf.db.models import Run, TestResult
from dtf.db.outage import DatabaseOutage, outage_limit
from dtf.db.session import database_errors, get_engine, session_scope
from dtf.errors import DatabaseUnreachable, InfrastructureError
from dtf.recovery.notices import RecoveryNotices
from dtf.summary import (
    FAILING_OUTCOMES,
    SUBTESTS_PASSED,
    TERMINAL_RUN_STATES,
    RunSummary,
    summarize,
)

ORDER = (
    "passed", "failed", "error", "crashed", "timed_out", "out_of_memory", "infra_error",
    "flaky", "skipped", "xfailed", "xpassed",
)  # fmt: skip

#: Plain (non-terminal) progress prints a changed counts line at most this often.
PLAIN_EVERY_S = 5.0
#: How often the counts are read while waiting for a bar or per-test lines (the end is
#: seen sooner); plain progress reads them as often as it prints.
SUMMARY_EVERY_S = 0.5


def counts_line(summary: RunSummary) -> str:
    """``12 passed, 1 failed, 3 remaining`` (outcomes in a fixed order, zeros left out)."""
    shown = (*ORDER, SUBTESTS_PASSED)
    parts = [f"{summary.counts[o]} {o.replace('_', ' ')}" for o in shown if summary.counts.get(o)]
    remaining = summary.total - summary.finished
    if remaining and not summary.done:
        parts.append(f"{remaining} remaining")
    commands = [c for c in summary.commands if c.status not in ("pending", "running")]
    if summary.commands:
        parts.append(f"{len(commands)}/{len(summary.commands)} commands")
    if summary.benchmarks is not None:
        parts.append(benchmarks_part(summary.benchmarks))
    return ", ".join(parts) or "waiting for workers"


@dataclass(frozen=True)
class FinishedTest:
    """One stored result line of a test, read out of its session."""

    id: int
    nodeid: str
    outcome: str
    when: str
    duration: float
    worker: str | None
    attempt: int = 1  # 2.. for reruns of a failed test
    superseded: bool = False  # an earlier attempt a rerun replaced
    stdout: str | None = None
    stderr: str | None = None
    longrepr: str | None = None

    @property
    def has_output(self) -> bool:
        return bool(self.stdout or self.stderr or self.longrepr)


_SUMMARY_COLUMNS = (
    "id", "nodeid", "outcome", "when", "duration", "worker", "attempt", "superseded",
)  # fmt: skip
_OUTPUT_COLUMNS = ("stdout", "stderr", "longrepr")


def finished_tests(session: Session, condition, *, with_output: bool = False) -> list[FinishedTest]:
    """The result lines matching ``condition``, in the order they were stored."""
    names = _SUMMARY_COLUMNS + (_OUTPUT_COLUMNS if with_output else ())
    query = select(*(getattr(TestResult, n) for n in names)).where(condition)
    return [FinishedTest(**row._mapping) for row in session.execute(query.order_by(TestResult.id))]


class NewResults:
    """Each call returns the results of a run stored since the last call, each once.

    Result ids come from a sequence: under concurrent workers a row can become
    visible after one with a higher id. So ids are looked for above a floor that
    only moves past ids seen at least ``settle_s`` seconds ago, and those already
    returned are remembered until the floor passes them.
    """

    def __init__(self, run_id: str, *, with_output: bool = False, settle_s: float = 30.0):
        self.run_id, self.with_output, self.settle_s = run_id, with_output, settle_s
        self.floor = 0
        self.returned: set[int] = set()
        self.marks: deque[tuple[float, int]] = deque()  # (when seen, highest id then)

    def __call__(self, session: Session) -> list[FinishedTest]:
        ids = session.scalars(
            select(TestResult.id).where(
                TestResult.run_id == self.run_id, TestResult.id > self.floor
            )
        ).all()
        new = sorted(i for i in ids if i not in self.returned)
        found: list[FinishedTest] = []
        for start in range(0, len(new), 500):
            chunk = new[start : start + 500]
            found += finished_tests(session, TestResult.id.in_(chunk), with_output=self.with_output)
        self.returned.update(new)
        now = time.monotonic()
        if ids:
            self.marks.append((now, max(ids)))
        while self.marks and self.marks[0][0] <= now - self.settle_s:
            self.floor = max(self.floor, self.marks.popleft()[1])
            self.returned = {i for i in self.returned if i > self.floor}
        return found


_STYLES = {"passed": "green", "skipped": "yellow", "xfailed": "yellow", "xpassed": "yellow"}


def outcome_line(test: FinishedTest) -> Text:
    """``PASSED    tests/test_a.py::test_b  0.12s  w1@host`` (styled on a terminal), with
    ``  attempt 2`` for a rerun."""
    style = "bold red" if test.outcome in FAILING_OUTCOMES else _STYLES.get(test.outcome, "")
    label = test.outcome.upper() + ("" if test.when == "call" else f" ({test.when})")
    rerun = f"  attempt {test.attempt}" if test.attempt and test.attempt > 1 else ""
    return Text.assemble(
        (f"{label:9}", style),
        f" {test.nodeid}  {test.duration:.2f}s  {test.worker or '-'}{rerun}",
    )


def wait_for_run(
    db_url: str,
    run_id: str,
    console: Console,
    *,
    still_serving: Callable[[RunSummary], str | None] = lambda summary: None,
    verbose: bool = False,
    poll_interval: float = 0.1,
    outage_s: float | None = None,
    resume: str | None = None,
) -> RunSummary:
    """Block until the run is finished; ``still_serving`` names why it cannot finish, if so.

    On a terminal: a bar with counts, elapsed time and ETA, erased at the end.
    Otherwise: a ``dtf: [done/total] counts (eta …)`` line when the counts
    change, at most every ``PLAIN_EVERY_S``. ``verbose``: one line per result.

    A database that stops answering is tried again with back-off for ``outage_s``
    seconds (default: ``DTF_DB_OUTAGE_S``, see dtf/db/outage.py), with a line when it
    goes and one when it is back; past that, InfrastructureError ending with ``resume``
    (default: ``dtf wait RUN`` resumes waiting).
    """
    progress = Progress(
        TextColumn("[bold]dtf[/bold] run " + run_id),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
        speed_estimate_period=120,
    )
    new_results = NewResults(run_id) if verbose else None
    notices = RecoveryNotices(run_id)
    summary_every = SUMMARY_EVERY_S if console.is_terminal or verbose else PLAIN_EVERY_S
    last_line, last_text, last_printed = None, None, float("-inf")
    status = RunStatusReader(db_url, run_id)
    outage = DatabaseOutage(
        db_url,
        run_id,
        lambda line: progress.console.print(line, markup=False, highlight=False),
        limit_s=outage_limit() if outage_s is None else outage_s,
        resume=resume or f"run {run_id} goes on: `dtf wait {run_id}` resumes waiting for it",
    )

    def poll(next_summary: float) -> tuple[RunSummary | None, float]:
        """One look at the run: its summary when one was due (else None), and when the
        next is due."""
        nonlocal last_line, last_text, last_printed
        # The full summary costs CPU the workers need on a small machine: between
        # summaries only the run's status is read, so the end is seen within one poll.
        if time.monotonic() < next_summary:
            over = status.over()
            outage.answered()
            if not over:
                return None, next_summary
        with session_scope(db_url) as session:
            summary = summarize(session, run_id)
            finished = new_results(session) if new_results else []
            recovered = notices(session)
        outage.answered()
        for notice in recovered:
            progress.console.print(f"dtf: {notice}", markup=False, highlight=False)
        next_summary = time.monotonic() + summary_every
        for test in finished:
            progress.console.print(outcome_line(test), highlight=False)
        line = counts_line(summary)
        progress.update(
            bar, total=summary.total or None, completed=summary.finished, description=line
        )
        now = time.monotonic()
        due = summary.done or (line != last_line and now - last_printed >= PLAIN_EVERY_S)
        text = plain_line(summary, progress.tasks[0].time_remaining)
        if not console.is_terminal and due and text.plain != last_text:
            console.print(text)
            last_line, last_text, last_printed = line, text.plain, now
        if not summary.done:
            problem = still_serving(summary)
            if problem:
                raise InfrastructureError(problem)
        return summary, next_summary

    with progress, contextlib.closing(status):
        bar = progress.add_task("", total=None)
        next_summary = 0.0
        while True:
            try:
                summary, next_summary = poll(next_summary)
            except DatabaseUnreachable as exc:
                status.close()
                next_summary = 0.0  # a full summary first once it is back
                time.sleep(outage.failed(exc))
                continue
            if summary is not None and summary.done:
                return summary
            time.sleep(poll_interval)


class RunStatusReader:
    """Whether a run is over, read over one connection it keeps between polls.

    A poll is then one query, not a pool checkout with its ping, the query and a
    commit; autocommit leaves no transaction open in between. A connection that
    broke (the database restarted) is replaced once before the error counts.
    """

    def __init__(self, db_url: str, run_id: str) -> None:
        self.db_url, self.run_id = db_url, run_id
        self._connection: Connection | None = None

    def over(self) -> bool:
        query = select(Run.status).where(Run.id == self.run_id)
        with database_errors(self.db_url):
            try:
                status = self._connect().scalar(query)
            except DBAPIError:
                self.close()
                status = self._connect().scalar(query)
        return status in TERMINAL_RUN_STATES

    def _connect(self) -> Connection:
        if self._connection is None:
            engine = get_engine(self.db_url)
            self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(DBAPIError):
                self._connection.close()
            self._connection = None


def plain_line(summary: RunSummary, eta_s: float | None) -> Text:
    """``dtf: [13/40] 12 passed, 1 failed, 27 remaining (eta 0:00:35)``."""
    unfinished = not summary.done and summary.finished < summary.total
    eta = f" (eta {_clock(eta_s)})" if unfinished and eta_s is not None else ""
    fraction = f"[{summary.finished}/{summary.total}] " if summary.total else ""
    return Text(f"dtf: {fraction}{counts_line(summary)}{eta}")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class ClusterWatch:
    """Says why a run cannot finish: the broker is gone, or no worker serves its open queues.

    Checked every ``interval`` seconds while waiting; the broker must stay
    unreachable, or a queue without a consumer, for ``patience`` checks in a row,
    so a restarting broker or worker is fine.
    """

    def __init__(self, app, settings, run_id: str, interval: float = 15.0, patience: int = 3):
        self.app, self.settings, self.run_id = app, settings, run_id
        self.interval, self.patience = interval, patience
        self.next_check = time.monotonic() + interval
        self.strikes = 0
        self.broker_strikes = 0

    def __call__(self, summary: RunSummary) -> str | None:
        from dtf.config import worker_queue
        from dtf.submission import check_broker, live_workers

        if time.monotonic() < self.next_check or not summary.open_queues:
            return None
        self.next_check = time.monotonic() + self.interval
        resume = f"run {self.run_id} stays queued; `dtf wait {self.run_id}` follows it again"
        try:
            check_broker(self.app, self.settings)
        except InfrastructureError as exc:
            self.broker_strikes += 1
            if self.broker_strikes >= self.patience:
                return f"{exc}; {resume}"
            return None
        self.broker_strikes = 0
        served = set()
        for worker in live_workers(self.settings.database_url):
            served |= {*worker.healthy_queues, worker_queue(worker.hostname)}
        missing = sorted(summary.open_queues - served)
        self.strikes = self.strikes + 1 if missing else 0
        if self.strikes >= self.patience:
            return f"no live worker consumes queue '{missing[0]}' any more; {resume}"
        return None
