"""What every report says about a run, read from the database once and rendered by each format.

``load_report`` reads every row of the run (``records``, for the JSON report) and
derives the views the other formats show: one entry per test id, totals, breakdowns
by hardware, worker and module, failures, flaky and slowest tests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from dtf.db.models import (
    Attempt,
    Batch,
    BenchmarkResult,
    Bundle,
    Run,
    RunTask,
    TestItem,
    TestResult,
    Worker,
)
from dtf.progress import ORDER
from dtf.recovery.notices import recoveries
from dtf.summary import FAILING_OUTCOMES, counted_as, summarize

NOT_RUN = "not_run"
#: Outcomes in the order reports list them; an outcome not named here comes after.
OUTCOME_ORDER: tuple[str, ...] = (*ORDER, NOT_RUN)
#: Which failing result names a test's outcome when it has several (a test that
#: passed and then errored in teardown is an error; a failure beats its teardown error).
_WORST_FIRST = ("crashed", "timed_out", "failed", "error")
NO_WORKER = "(no worker)"


def outcome_rank(outcome: str) -> int:
    """Sort key putting outcomes in report order."""
    return OUTCOME_ORDER.index(outcome) if outcome in OUTCOME_ORDER else len(OUTCOME_ORDER)


def is_failing(outcome: str) -> bool:
    return outcome in FAILING_OUTCOMES


@dataclass(frozen=True)
class Result:
    """One stored result line of a test (a phase of one attempt)."""

    nodeid: str
    outcome: str
    when: str
    duration: float
    longrepr: str | None
    stdout: str | None
    stderr: str | None
    worker: str | None
    attempt: int = 1
    #: a subtest's result: "#N description"; "" for the test's own
    subtest: str = ""

    @property
    def failing(self) -> bool:
        return is_failing(self.outcome)


@dataclass
class TestEntry:
    """One test id of the run with everything reports show about it."""

    __test__ = False  # not a pytest class, despite the name

    nodeid: str
    module: str  # the file part of the node id
    outcome: str  # the test's outcome: its worst counted result, or ``not_run``
    duration: float  # seconds in all its counted phases
    hardware: str
    worker: str | None
    task: int  # position of its task in the run
    results: list[Result] = field(default_factory=list)  # counted: setup/call, teardown error
    earlier: list[Result] = field(default_factory=list)  # superseded attempts (reruns)
    retries: int = 0

    @property
    def failing(self) -> bool:
        return any(r.failing for r in self.results) or is_failing(self.outcome)

    @property
    def attempts(self) -> int:
        """How many times it ran (a rerun test more than once)."""
        return max([r.attempt for r in self.results + self.earlier], default=1)

    @property
    def error(self) -> str | None:
        """The text of its first failing result, else of any result that has one."""
        texts = [r.longrepr for r in self.results if r.failing and r.longrepr]
        texts = texts or [r.longrepr for r in self.results if r.longrepr]
        return texts[0] if texts else None


@dataclass(frozen=True)
class CommandEntry:
    """A command task of the run."""

    position: int
    name: str
    queue: str
    status: str
    exit_code: int | None
    duration: float | None
    worker: str | None
    output: str | None

    @property
    def failing(self) -> bool:
        return self.status in ("broken", "timed_out") or bool(self.exit_code)


@dataclass
class Group:
    """Tests that share a hardware kind, a worker or a module."""

    name: str
    tests: int = 0  # test ids
    duration: float = 0.0  # seconds in tests
    counts: dict[str, int] = field(default_factory=dict)  # result lines by outcome

    @property
    def failing(self) -> int:
        return sum(n for outcome, n in self.counts.items() if is_failing(outcome))


@dataclass
class RunReport:
    """A run as the reports see it."""

    run_id: str
    name: str | None
    status: str
    exit_code: int | None  # None while the run is not finished
    total: int  # test ids planned
    finished: int  # test ids with a result
    counts: dict[str, int]  # counted result lines by outcome, as pytest counts them
    tests: list[TestEntry]
    commands: list[CommandEntry]
    broken: list[str]  # one line per batch or task that could not run
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    records: dict[str, Any]  # every stored field: run, tasks, batches, items, results, ...
    #: why test tasks stopped early (-x / --maxfail): their tests not run are left out
    stopped: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.exit_code is not None

    @property
    def title(self) -> str:
        return self.name or f"dtf run {self.run_id}"

    @property
    def wall_s(self) -> float | None:
        """Seconds from submission (or start) to the end, while it is known."""
        start = self.started_at or self.created_at
        if start is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - start).total_seconds())

    @property
    def test_s(self) -> float:
        """Seconds spent inside tests, over all workers."""
        return sum(t.duration for t in self.tests)

    @property
    def ci(self) -> dict[str, str]:
        """CI context stored on the run (provider, commit, branch, pull request, build URL)."""
        run = self.records["run"]
        return {
            key.removeprefix("ci_"): str(value)
            for key, value in run.items()
            if key.startswith("ci_") and value not in (None, "")
        }

    @property
    def labels(self) -> dict[str, str]:
        """The run's labels (``labels:`` of its task file, ``--label``), by key."""
        return dict(sorted((self.records["run"].get("labels") or {}).items()))

    @cached_property
    def failures(self) -> list[tuple[TestEntry, Result | None]]:
        """Each failing result line with its test (``None``: the test never ran)."""
        found: list[tuple[TestEntry, Result | None]] = []
        for test in self.tests:
            found += [(test, r) for r in test.results if r.failing]
            if test.outcome == NOT_RUN and self.done:
                found.append((test, None))
        return found

    @cached_property
    def flaky(self) -> list[TestEntry]:
        return [t for t in self.tests if t.outcome == "flaky"]

    def slowest(self, n: int = 10) -> list[TestEntry]:
        ran = [t for t in self.tests if t.results]
        return sorted(ran, key=lambda t: (-t.duration, t.nodeid))[:n]

    @cached_property
    def by_hardware(self) -> list[Group]:
        return _groups(self.tests, lambda t: t.hardware)

    @cached_property
    def by_worker(self) -> list[Group]:
        return _groups(self.tests, lambda t: t.worker or NO_WORKER)

    @cached_property
    def by_module(self) -> list[Group]:
        return _groups(self.tests, lambda t: t.module)

    @property
    def outcomes(self) -> list[str]:
        """Outcomes that occur among the tests, in report order."""
        return sorted({t.outcome for t in self.tests}, key=outcome_rank)


def _groups(tests: list[TestEntry], key) -> list[Group]:
    groups: dict[str, Group] = {}
    for test in tests:
        group = groups.setdefault(key(test), Group(key(test)))
        group.tests += 1
        group.duration += test.duration
        for outcome in [r.outcome for r in test.results] or [NOT_RUN]:
            group.counts[outcome] = group.counts.get(outcome, 0) + 1
    return sorted(groups.values(), key=lambda g: g.name)


def row_dict(obj: Any) -> dict[str, Any]:
    """Every column of an ORM row, by attribute name (new columns come along on their own)."""
    return {column.key: getattr(obj, column.key) for column in inspect(obj).mapper.column_attrs}


def load_report(session: Session, run_id: str) -> RunReport:
    """Read the run and everything it holds; raises LookupError for an unknown run."""
    summary = summarize(session, run_id)
    run = session.get(Run, run_id)
    tasks = session.scalars(select(RunTask).filter_by(run_id=run_id).order_by(RunTask.position))
    tasks = [row_dict(t) for t in tasks]
    batches = [
        row_dict(b)
        for b in session.scalars(
            select(Batch).filter_by(run_id=run_id).order_by(Batch.task_id, Batch.position)
        )
    ]
    attempts: dict[str, list[dict]] = defaultdict(list)
    for attempt in session.scalars(
        select(Attempt)
        .join(Batch, Attempt.batch_id == Batch.id)
        .where(Batch.run_id == run_id)
        .order_by(Attempt.batch_id, Attempt.number)
    ):
        attempts[attempt.batch_id].append(row_dict(attempt))
    for batch in batches:
        batch["attempts"] = attempts.get(batch["id"], [])
    items = [
        row_dict(i)
        for i in session.scalars(select(TestItem).filter_by(run_id=run_id).order_by(TestItem.id))
    ]
    results = [
        row_dict(r)
        for r in session.scalars(
            select(TestResult).filter_by(run_id=run_id).order_by(TestResult.id)
        )
    ]
    records = {
        "run": row_dict(run),
        "tasks": tasks,
        "batches": batches,
        "items": items,
        "results": results,
        "workers": _workers(session, tasks, batches, results),
        "bundle": _bundle(session, run.bundle),
        "recoveries": recoveries(session, run_id),
        "benchmarks": [
            row_dict(b)
            for b in session.scalars(
                select(BenchmarkResult).filter_by(run_id=run_id).order_by(BenchmarkResult.id)
            )
        ],
    }
    tests = _tests(records)
    counts: dict[str, int] = defaultdict(int)
    for test in tests:
        for result in test.results:
            counts[counted_as(result.outcome, result.subtest)] += 1
    return RunReport(
        run_id=run_id,
        name=run.name,
        status=summary.status,
        exit_code=summary.exit_code if summary.done else None,
        total=len(tests),
        finished=sum(1 for t in tests if t.results),
        counts=dict(sorted(counts.items(), key=lambda kv: outcome_rank(kv[0]))),
        tests=tests,
        commands=[_command(t) for t in tasks if t["type"] == "command"],
        broken=summary.broken,
        error=run.error,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        records=records,
        stopped=summary.stopped,
    )


def _workers(session: Session, tasks, batches, results) -> list[dict[str, Any]]:
    """Registry rows of the workers that ran something; a worker that has removed its
    row since (local workers do on exit) is listed by hostname alone."""
    names = {t["worker"] for t in tasks} | {r["worker"] for r in results}
    names |= {a["worker"] for b in batches for a in b["attempts"]}
    names.discard(None)
    found = {
        w.hostname: row_dict(w)
        for w in session.scalars(select(Worker).where(Worker.hostname.in_(sorted(names))))
    }
    return [found.get(name, {"hostname": name}) for name in sorted(names)]


def _bundle(session: Session, sha256: str | None) -> dict[str, Any] | None:
    """The run's code bundle without its bytes (they are the packed project)."""
    if sha256 is None:
        return None
    row = session.get(Bundle, sha256)
    if row is None:
        return {"sha256": sha256}
    return {k: v for k, v in row_dict(row).items() if k != "data"}


def _most_common(counter: Counter[str]) -> str | None:
    return counter.most_common(1)[0][0] if counter else None


def _tests(records: dict[str, Any]) -> list[TestEntry]:
    batches = {b["id"]: b for b in records["batches"]}
    tasks = {t["id"]: t for t in records["tasks"]}
    # A test with no batch (a collection error) ran where its task's tests ran.
    task_hardware: dict[int, Counter[str]] = defaultdict(Counter)
    for batch in records["batches"]:
        if batch.get("hardware"):
            task_hardware[batch["task_id"]][batch["hardware"]] += batch.get("size") or 1
    rows: dict[int, list[dict]] = defaultdict(list)
    for row in records["results"]:
        rows[row["item_id"]].append(row)
    tests = []
    for item in records["items"]:
        counted = [_result(r) for r in rows[item["id"]] if not r.get("superseded")]
        earlier = [_result(r) for r in rows[item["id"]] if r.get("superseded")]
        batch = batches.get(item["batch_id"]) or {}
        task = tasks.get(item["task_id"]) or {}
        tests.append(
            TestEntry(
                nodeid=item["nodeid"],
                module=item["nodeid"].split("::", 1)[0],
                outcome=_outcome(item, counted),
                duration=sum(r.duration for r in counted),
                hardware=batch.get("hardware")
                or _most_common(task_hardware[item["task_id"]])
                or batch.get("queue")
                or task.get("queue")
                or "?",
                worker=_worker(counted, batch),
                task=task.get("position", 0),
                results=counted,
                earlier=earlier,
                retries=item.get("retries") or 0,
            )
        )
    return sorted(tests, key=lambda t: (t.task, t.nodeid))


def _result(row: dict[str, Any]) -> Result:
    return Result(
        nodeid=row["nodeid"],
        outcome=row["outcome"],
        when=row["when"],
        duration=row["duration"] or 0.0,
        longrepr=row["longrepr"],
        stdout=row["stdout"],
        stderr=row["stderr"],
        worker=row["worker"],
        attempt=row.get("attempt") or 1,
        subtest=row.get("subtest") or "",
    )


def _outcome(item: dict[str, Any], results: list[Result]) -> str:
    for worst in _WORST_FIRST:
        if any(r.outcome == worst for r in results):
            return worst
    if item["outcome"]:
        return item["outcome"]
    main = [r for r in results if r.when != "teardown"] or results
    return main[-1].outcome if main else NOT_RUN


def _worker(results: list[Result], batch: dict[str, Any]) -> str | None:
    for result in reversed(results):
        if result.worker:
            return result.worker
    attempts = batch.get("attempts") or []
    return attempts[-1]["worker"] if attempts else None


def _command(task: dict[str, Any]) -> CommandEntry:
    started, finished = task["started_at"], task["finished_at"]
    return CommandEntry(
        position=task["position"],
        name=task["name"] or f"command[{task['position']}]",
        queue=task["queue"],
        status=task["status"],
        exit_code=task["exit_code"],
        duration=(finished - started).total_seconds() if started and finished else None,
        worker=task["worker"],
        output=task["output"],
    )
