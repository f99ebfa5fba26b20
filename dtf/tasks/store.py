"""What tasks write to the database while they run: attempts and results, one commit each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dtf.db.models import (
    Attempt,
    Batch,
    FlakyTest,
    Run,
    RunTask,
    TestItem,
    TestResult,
    utcnow,
)
from dtf.db.session import session_scope
from dtf.executor.records import TestRecord
from dtf.plugins import worker as plugin_hooks
from dtf.pytest_args import maxfail_of
from dtf.summary import FAILING_OUTCOMES
from dtf.tasks.stopping import stop_if_reached


@dataclass(frozen=True)
class BatchWork:
    """What one attempt at a batch has to run."""

    run_id: str
    attempt_id: int
    workdir: str  # relative to the bundle's root when ``bundle`` is set
    bundle: str | None
    test_timeout: float
    pytest_args: list[str]
    items: dict[str, int]  # nodeid -> item id, in run order, only items without a result
    #: the task's paths as pytest got them at collection (after ``pytest_args``)
    paths: list[str] = field(default_factory=list)
    #: nodeid -> its file relative to ``workdir`` (where pytest was invoked)
    files: dict[str, str] = field(default_factory=dict)
    batch_id: str = ""
    queue: str = ""
    hardware: str | None = None
    suite: str | None = None
    #: the task's retry_policy (per test and batch) and the run's retry_budget
    max_retries: int = 3
    retry_delay_s: float = 0.0
    run_budget: int = 50
    reruns: int = 0
    memory_limit_mb: float | None = None
    #: acceptable hardware kinds of the tests left, most preferred first
    hardware_kinds: list[str] = field(default_factory=list)
    #: earlier attempts that never finished: their worker died (hostnames)
    interrupted: list[str] = field(default_factory=list)
    #: expected seconds of the batch's tests when it was planned (None: unknown)
    estimated_s: float | None = None
    task_id: int = 0
    #: the task's -x / --maxfail (None: no limit)
    maxfail: int | None = None


def start_attempt(
    db_url: str, batch_id: str, worker: str | None, dispatch: dict[str, Any] | None = None
) -> BatchWork | None:
    """Record a new attempt and return the batch's items that still have no result.

    A redelivered batch (its worker died) only runs what the dead attempt did
    not finish, so no test is counted twice; earlier attempts still marked running
    become ``lost`` (``BatchWork.interrupted``). None when the batch is already
    accounted for (done, broken or split): a duplicate delivery runs nothing.
    ``dispatch``: the Celery options of this delivery, kept to send it again.
    """
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise LookupError(f"batch {batch_id} is not in the database")
        if batch.status in ("done", "broken", "split"):
            return None
        interrupted = list(
            session.scalars(select(Attempt).filter_by(batch_id=batch_id, status="running"))
        )
        for old in interrupted:
            old.status = "lost"
            old.failure_class = "worker_lost"
            old.finished_at = utcnow()
        if dispatch is not None:
            batch.dispatch = dispatch
        number = (
            session.scalar(select(func.count()).select_from(Attempt).filter_by(batch_id=batch_id))
            or 0
        ) + 1
        attempt = Attempt(batch_id=batch_id, number=number, worker=worker)
        session.add(attempt)
        now = utcnow()
        batch.status = "running"
        batch.started_at = batch.started_at or now
        _mark_run_started(session, batch.run_id, now)
        task = session.get(RunTask, batch.task_id)
        if task is not None and task.status == "pending":
            task.status, task.started_at = "running", now
        session.flush()
        return _work(session, batch, attempt.id, [old.worker or "?" for old in interrupted])


def describe_batch(db_url: str, batch_id: str) -> BatchWork | None:
    """What is left of a batch, without starting an attempt (the reconciler's view)."""
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status in ("done", "broken", "split"):
            return None
        return _work(session, batch, 0, [])


def _work(session, batch: Batch, attempt_id: int, interrupted: list[str]) -> BatchWork:
    task = session.get(RunTask, batch.task_id)
    run = session.get(Run, batch.run_id)
    pending = session.execute(
        select(TestItem.nodeid, TestItem.id, TestItem.requirements, TestItem.path)
        .filter_by(batch_id=batch.id, outcome=None)
        .order_by(TestItem.id)
    ).all()
    policy = task.spec.get("retry_policy") or {}
    return BatchWork(
        run_id=batch.run_id,
        attempt_id=attempt_id,
        workdir=task.workdir,
        bundle=run.bundle,
        test_timeout=batch.test_timeout or task.timeout,
        pytest_args=list(task.spec.get("pytest_args") or []),
        items={nodeid: item_id for nodeid, item_id, _, _ in pending},
        paths=list(task.spec.get("paths") or []),
        files={nodeid: path for nodeid, _, _, path in pending if path},
        batch_id=batch.id,
        queue=batch.queue,
        hardware=batch.hardware,
        suite=task.suite,
        max_retries=int(policy.get("max_retries", 3)),
        retry_delay_s=float(policy.get("retry_delay_seconds") or 0.0),
        run_budget=int((run.spec or {}).get("retry_budget", 50)),
        reruns=int(task.spec.get("reruns") or 0),
        memory_limit_mb=task.spec.get("memory_limit_mb"),
        hardware_kinds=_common_kinds([r or {} for _, _, r, _ in pending]),
        interrupted=interrupted,
        estimated_s=batch.estimated_s,
        task_id=task.id,
        maxfail=maxfail_of(task.spec.get("pytest_args") or []),
    )


def _common_kinds(requirements: list[dict]) -> list[str]:
    """Hardware kinds every one of the tests accepts, in the first test's order."""
    kinds: list[str] | None = None
    for req in requirements:
        own = list(req.get("hardware") or ["cpu"])
        kinds = own if kinds is None else [k for k in kinds if k in own]
    return kinds or []


def _mark_run_started(session, run_id: str, now) -> None:
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "pending")
        .values(status="running", started_at=now)
    )


def result_values(
    record: TestRecord,
    *,
    run_id: str,
    item_id: int,
    attempt_id: int | None = None,
    worker: str | None = None,
) -> dict:
    """The columns of one result line's database row."""
    return {
        "run_id": run_id,
        "item_id": item_id,
        "attempt_id": attempt_id,
        "nodeid": record.nodeid,
        "outcome": record.outcome,
        "when": record.when,
        "duration": record.duration,
        "longrepr": record.longrepr,
        "stdout": record.stdout,
        "stderr": record.stderr,
        "worker": worker,
        "attempt": record.attempt,
        "subtest": record.subtest,
    }


def result_row(record: TestRecord, **where) -> TestResult:
    """The database row of one result line (``where``: as for :func:`result_values`)."""
    return TestResult(**result_values(record, **where))


def record_result(db_url: str, work: BatchWork, record: TestRecord, worker: str | None) -> bool:
    """Store one test result as soon as it exists; False if it was already stored."""
    return record_results(db_url, work, [record], worker) == [True]


def record_results(
    db_url: str,
    work: BatchWork,
    records: list[TestRecord],
    worker: str | None,
    failing_subtests: set[str] | None = None,
) -> list[bool]:
    """Store results that arrived together in one transaction; per record, False if it
    was already stored (then each is written on its own, so the others still land)."""
    known = [r for r in records if r.nodeid in work.items]
    if not known:
        return [False] * len(records)
    try:
        with session_scope(db_url) as session:
            _add_results(session, work, known, worker, failing_subtests)
    except IntegrityError:
        if len(records) == 1:
            return [False]  # a concurrent redelivery of this batch stored it first
        return [
            bool(record_results(db_url, work, [r], worker, failing_subtests)[0]) for r in records
        ]
    return [r.nodeid in work.items for r in records]


def _add_results(
    session,
    work: BatchWork,
    records: list[TestRecord],
    worker: str | None,
    failing_subtests: set[str] | None = None,
) -> None:
    """``failing_subtests``: the tests of this batch with a failing subtest so far (updated
    here), whose own passing result does not make them pass."""
    failing_subtests = set() if failing_subtests is None else failing_subtests
    # In bulk (one INSERT and one UPDATE for the group): statement by statement, the
    # worker's share of a run of short tests was ~1 ms of CPU per test.
    session.execute(
        insert(TestResult),
        [
            result_values(r, run_id=work.run_id, item_id=work.items[r.nodeid],
                          attempt_id=work.attempt_id, worker=worker)
            for r in records
        ],
    )  # fmt: skip
    for record in records:
        item_id = work.items[record.nodeid]
        if record.attempt > 1:
            # A rerun: the earlier attempts stay as history, no longer counted.
            session.execute(
                update(TestResult)
                .where(TestResult.item_id == item_id, TestResult.attempt < record.attempt)
                .values(superseded=True)
            )
        if record.outcome == "flaky" and work.suite:
            _count_flaky(session, work.suite, record.nodeid, work.run_id)
    outcomes = {}
    for r in records:  # the last record of an item wins, as it would one statement at a time
        if r.subtest:
            if r.outcome not in FAILING_OUTCOMES:
                continue  # a passing subtest says nothing of the test as a whole
            failing_subtests.add(r.nodeid)
        if r.when == "teardown":
            continue
        outcome = r.outcome
        if r.nodeid in failing_subtests and outcome not in FAILING_OUTCOMES:
            outcome = "failed"
        outcomes[work.items[r.nodeid]] = {"outcome": outcome, "duration": r.duration}
    if outcomes:
        session.execute(
            update(TestItem), [{"id": item_id, **values} for item_id, values in outcomes.items()]
        )


def finish_attempt(
    db_url: str,
    batch_id: str,
    attempt_id: int,
    *,
    status: str,
    children: int = 0,
    exit_codes: list[int] | None = None,
    error: str | None = None,
    startup_s: float | None = None,
    test_s: float | None = None,
) -> None:
    """Close an attempt and its batch (``status`` is ``completed`` or ``broken``)."""
    with session_scope(db_url) as session:
        now = utcnow()
        attempt = session.get(Attempt, attempt_id)
        if attempt is not None:
            attempt.status = status
            attempt.children = children
            attempt.exit_codes = exit_codes or []
            attempt.error = error
            attempt.finished_at = now
            attempt.startup_s = startup_s
            attempt.test_s = test_s
        batch = session.get(Batch, batch_id)
        batch.status = "done" if status == "completed" else "broken"
        batch.error = error
        batch.finished_at = now


def mark_batch_broken(db_url: str, batch_id: str, error: str) -> None:
    """Record that a batch could not run at all (no attempt was started)."""
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is not None:
            batch.status = "broken"
            batch.error = error
            batch.finished_at = utcnow()


def _count_flaky(session, suite: str, nodeid: str, run_id: str) -> None:
    row = session.get(FlakyTest, (suite, nodeid))
    if row is None:
        row = FlakyTest(suite=suite, nodeid=nodeid, times=0)
        session.add(row)
    row.times += 1
    row.last_run_id = run_id
    row.last_seen_at = utcnow()


def give_up(db_url: str, batch_id: str, attempt_id: int | None, reason: str) -> list[str]:
    """Level 5: every item of the batch without a result ends as ``infra_error``; the
    batch is broken (the run ends as ``error``, exit 3). Returns the ids given up on."""
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        pending = list(session.scalars(select(TestItem).filter_by(batch_id=batch_id, outcome=None)))
        longrepr = f"recovery gave up on this test (level 5, critical): {reason}"
        for item in pending:
            record = TestRecord(nodeid=item.nodeid, outcome="infra_error", when="run",
                                longrepr=longrepr[:60000])  # fmt: skip
            session.add(result_row(record, run_id=batch.run_id, item_id=item.id,
                                   attempt_id=attempt_id))  # fmt: skip
            item.outcome = "infra_error"
        now = utcnow()
        if attempt_id is not None:
            attempt = session.get(Attempt, attempt_id)
            if attempt is not None and attempt.status == "running":
                attempt.status = "broken"
                attempt.error = reason
                attempt.finished_at = now
        batch.status = "broken"
        batch.error = f"recovery gave up (level 5): {reason}"[:4000]
        batch.finished_at = now
        return [item.nodeid for item in pending]


def end_attempt_for_retry(db_url: str, attempt_id: int, failure_class: str, error: str) -> None:
    """Close an attempt that recovery moves elsewhere (the batch stays open)."""
    with session_scope(db_url) as session:
        attempt = session.get(Attempt, attempt_id)
        if attempt is None:
            return
        attempt.status = "retried"
        attempt.failure_class = failure_class
        attempt.error = error[:4000]
        attempt.finished_at = utcnow()
        batch = session.get(Batch, attempt.batch_id)
        if batch is not None and batch.status == "running":
            batch.status = "pending"


def split_batch(db_url: str, batch_id: str) -> list[tuple[str, str, float]]:
    """Level 2: cut what is left of a batch into two new batches; the old one is ``split``.

    Returns (batch id, queue, time limit) of each half.
    """
    import uuid

    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        items = list(
            session.scalars(
                select(TestItem).filter_by(batch_id=batch_id, outcome=None).order_by(TestItem.id)
            )
        )
        half = max(1, len(items) // 2)
        halves = []
        for position, part in enumerate((items[:half], items[half:])):
            if not part:
                continue
            new = Batch(
                id=uuid.uuid4().hex,
                run_id=batch.run_id,
                task_id=batch.task_id,
                position=batch.position * 10 + position + 1,
                queue=batch.queue,
                size=len(part),
                test_timeout=batch.test_timeout,
                hardware=batch.hardware,
                estimated_s=(batch.estimated_s or 0.0) * len(part) / max(1, len(items)),
            )
            session.add(new)
            session.flush()
            for item in part:
                item.batch_id = new.id
            timeout = batch.test_timeout or session.get(RunTask, batch.task_id).timeout
            halves.append((new.id, new.queue, timeout * len(part)))
        batch.status = "split"
        batch.finished_at = utcnow()
        return halves


def hand_off(
    db_url: str, batch_id: str, nodeids: list[str], estimated_s: float
) -> tuple[str, float]:
    """Move ``nodeids`` (no result yet) of a running batch to a new batch of the same queue.

    Returns the new batch's id and its time limit (the tests' timeouts).
    """
    import uuid

    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id, with_for_update=True)
        wanted = set(nodeids)
        items = [
            item
            for item in session.scalars(
                select(TestItem).where(TestItem.batch_id == batch_id, TestItem.outcome.is_(None))
            )
            if item.nodeid in wanted
        ]
        if len(items) != len(wanted):
            raise LookupError(
                f"batch {batch_id}: {len(set(nodeids)) - len(items)} of the tests to hand "
                "off are not among its tests without a result"
            )
        last = session.scalar(select(func.max(Batch.position)).filter_by(run_id=batch.run_id))
        new = Batch(
            id=uuid.uuid4().hex,
            run_id=batch.run_id,
            task_id=batch.task_id,
            position=(last or 0) + 1,
            queue=batch.queue,
            size=len(items),
            test_timeout=batch.test_timeout,
            hardware=batch.hardware,
            estimated_s=estimated_s,
        )
        session.add(new)
        session.flush()
        for item in items:
            item.batch_id = new.id
        batch.size -= len(items)
        timeout = batch.test_timeout or session.get(RunTask, batch.task_id).timeout
        return new.id, timeout * len(items)


def take_back(db_url: str, batch_id: str, handed_to: str) -> None:
    """Undo :func:`hand_off` whose batch could not be sent: its tests return to ``batch_id``."""
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id, with_for_update=True)
        items = list(session.scalars(select(TestItem).filter_by(batch_id=handed_to)))
        for item in items:
            item.batch_id = batch_id
        batch.size += len(items)
        session.flush()
        session.delete(session.get(Batch, handed_to))


class ResultWriter:
    """Stores results as they come; while the database does not answer they are buffered
    and written, in order, once it does (``close`` waits for that a bounded time)."""

    def __init__(self, db_url: str, work: BatchWork, worker: str | None) -> None:
        self.db_url = db_url
        self.work = work
        self.worker = worker
        self.buffer: list[TestRecord] = []
        self.test_s = 0.0
        self.outage_started: float | None = None
        self.outage_error = ""
        #: tests of this batch with a failing subtest (see _add_results)
        self.failing_subtests: set[str] = set()

    def write(self, record: TestRecord) -> None:
        """Store ``record`` now (buffered while the database does not answer)."""
        self.add(record)
        self.flush()

    def add(self, record: TestRecord) -> None:
        """Buffer ``record`` for the next ``flush``: results that arrive together are
        stored in one transaction (a commit per test would cost more than short tests)."""
        self.test_s += record.duration
        self.buffer.append(record)

    def flush(self) -> bool:
        """Write what is buffered; False while the database is unreachable."""
        import logging
        import time

        from dtf.recovery import classes as fc

        while self.buffer:
            group = list(self.buffer)
            try:
                stored = record_results(
                    self.db_url, self.work, group, self.worker, self.failing_subtests
                )
            except Exception as exc:
                if fc.classify_exception(exc) != fc.DB_UNREACHABLE:
                    raise
                if self.outage_started is None:
                    logging.getLogger(__name__).warning(
                        "database unreachable, buffering results: %s", exc
                    )
                    self.outage_started = time.monotonic()
                self.outage_error = str(exc)
                return False
            del self.buffer[: len(group)]
            if self.work.maxfail and any(r.outcome in FAILING_OUTCOMES for r in group):
                try:
                    stop_if_reached(self.db_url, self.work.task_id, self.work.maxfail)
                except Exception:  # the results are stored; the next failure looks again
                    logging.getLogger(__name__).exception("could not check the task's maxfail")
            for record, new in zip(group, stored, strict=True):
                if new:
                    plugin_hooks.test_finished(
                        record, run_id=self.work.run_id, batch_id=self.work.batch_id,
                        worker=self.worker,
                    )  # fmt: skip
        if self.outage_started is not None:
            self._record_outage(time.monotonic() - self.outage_started)
            self.outage_started = None
        return True

    def close(self, patience_s: float) -> None:
        """Flush, retrying with back-off for up to ``patience_s``; raise if still failing."""
        import time

        from dtf.errors import InfrastructureError

        deadline = time.monotonic() + patience_s
        delay = 0.25
        while not self.flush():
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"database unreachable for {patience_s:g}s with "
                    f"{len(self.buffer)} results buffered: {self.outage_error}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _record_outage(self, seconds: float) -> None:
        """The database came back: a recovery of class db_unreachable that worked."""
        from dtf.recovery import table as tb
        from dtf.recovery.resources import Cost

        with session_scope(self.db_url) as session:
            event = tb.start_event(
                session,
                run_id=self.work.run_id,
                failure_class="db_unreachable",
                strategy="retry_in_place",
                batch_id=self.work.batch_id or None,
                nodeid="(results buffered)",
                worker=self.worker,
                detail=f"results buffered for {seconds:.1f}s: {self.outage_error}",
            )
            tb.finish_event(session, event, succeeded=True, cost=Cost(seconds, 0.0, 0.0))
