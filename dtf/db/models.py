"""What dtf keeps: runs, their tasks, test items, batches, attempts, results and workers."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Run(Base):
    """One submission: a run holds tasks, a test task holds items, items go out in batches."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    #: pending -> running -> passed | failed | error | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: the spec's ``labels`` (str -> str), kept as a column to find runs by label
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    workdir: Mapped[str] = mapped_column(Text)
    #: SHA-256 of the code bundle the workers run in; None: they use ``workdir`` as is
    bundle: Mapped[str | None] = mapped_column(ForeignKey("bundles.sha256"))
    error: Mapped[str | None] = mapped_column(Text)
    #: set by ``dtf cancel`` (or Ctrl-C on ``dtf run``): the run ends ``cancelled``
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: the CI job that submitted the run (dtf/ci_context.py), None outside CI
    ci_provider: Mapped[str | None] = mapped_column(String(32))
    ci_commit: Mapped[str | None] = mapped_column(String(64))
    ci_branch: Mapped[str | None] = mapped_column(Text)
    ci_pull_request: Mapped[str | None] = mapped_column(String(64))
    ci_build_url: Mapped[str | None] = mapped_column(Text)

    tasks: Mapped[list[RunTask]] = relationship(back_populates="run", order_by="RunTask.position")


class RunTask(Base):
    """A task of a run: a pytest selection, a shell command or a benchmark."""

    __tablename__ = "run_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(default=5)
    #: where pytest or the command runs, and the per-test (or command) timeout
    workdir: Mapped[str] = mapped_column(Text)
    timeout: Mapped[float] = mapped_column(Float)
    #: which suite the durations of its tests belong to (the submitter's directory)
    suite: Mapped[str | None] = mapped_column(Text)
    #: pending -> running -> done | broken (commands: exit code and output below)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    exit_code: Mapped[int | None]
    output: Mapped[str | None] = mapped_column(Text)
    #: set once a test task stops taking tests (its -x / --maxfail reached): its batches
    #: not started run nothing, running ones stop after their current test
    stop_reason: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    run: Mapped[Run] = relationship(back_populates="tasks")


class Batch(Base):
    """Test items of one task that run together in one ``execute_batch`` call."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # also the Celery task id
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("run_tasks.id", ondelete="CASCADE"))
    position: Mapped[int]
    queue: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    #: per-test timeout of this batch's tests (a marker may change the task's)
    test_timeout: Mapped[float | None] = mapped_column(Float)
    #: the hardware kind it runs on (``queue`` may be one worker's own queue)
    hardware: Mapped[str | None] = mapped_column(String(32))
    #: expected duration from the duration history when it was planned
    estimated_s: Mapped[float | None] = mapped_column(Float)
    #: pending -> running -> done | broken
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: Celery options of the batch's message (chord, group), to send it again (recovery)
    dispatch: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    attempts: Mapped[list[Attempt]] = relationship(order_by="Attempt.number")


class Attempt(Base):
    """One execution of a batch on a worker (a redelivered batch gets another)."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("batch_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(255))
    #: running -> completed | broken | retried | lost (its worker died)
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: the infrastructure failure that ended it (see dtf.recovery.classes)
    failure_class: Mapped[str | None] = mapped_column(String(32))
    children: Mapped[int] = mapped_column(default=0)
    #: efficiency: child start-up and collection, time inside tests
    startup_s: Mapped[float | None] = mapped_column(Float)
    test_s: Mapped[float | None] = mapped_column(Float)
    exit_codes: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class TestItem(Base):
    """A test id the run collected; ``outcome`` is set once it has a result."""

    __test__ = False
    __tablename__ = "test_items"
    __table_args__ = (UniqueConstraint("task_id", "nodeid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("run_tasks.id", ondelete="CASCADE"))
    batch_id: Mapped[str | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL"), index=True
    )
    nodeid: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    requirements: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outcome: Mapped[str | None] = mapped_column(String(16))
    duration: Mapped[float | None] = mapped_column(Float)
    #: recoveries spent on this test (its retry budget is the task's retry_policy)
    retries: Mapped[int] = mapped_column(Integer, default=0)


class TestResult(Base):
    """A result line of a test: one per test, plus one for an error in its teardown and one
    per subtest."""

    __test__ = False
    __tablename__ = "test_results"
    # A redelivered batch cannot count a test twice: one row per (test, attempt, phase,
    # subtest).
    __table_args__ = (
        UniqueConstraint(
            "item_id", "attempt", "when", "subtest", name="uq_test_results_item_attempt_when"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("test_items.id", ondelete="CASCADE"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id", ondelete="SET NULL"))
    #: the test's attempt: 1, then 2.. for reruns of a failed test (``reruns: N``)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    #: an earlier attempt of a rerun test: kept for history, not counted
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)
    nodeid: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    when: Mapped[str] = mapped_column(String(16))
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    longrepr: Mapped[str | None] = mapped_column(Text)
    stdout: Mapped[str | None] = mapped_column(Text)
    stderr: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: a subtest's result: "#N description" (see TestRecord.subtest); "" for the test's own
    subtest: Mapped[str] = mapped_column(Text, default="", server_default="")


class Worker(Base):
    """A worker that registered itself, with its latest heartbeat."""

    __tablename__ = "workers"

    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)
    queues: Mapped[list[Any]] = mapped_column(default=list)
    inventory: Mapped[dict[str, Any]] = mapped_column(default=dict)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[str] = mapped_column(String(32))
    pid: Mapped[int | None]
    #: online | offline (a worker whose heartbeat stopped is shown as lost)
    state: Mapped[str] = mapped_column(String(16), default="online")
    #: queue -> {"ok": bool, "reason": str | None, "checked_at": iso time}
    queue_health: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active_tasks: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_interval: Mapped[float] = mapped_column(Float, default=10.0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    #: set by recovery (level 4) when the worker keeps breaking: it takes no more work
    quarantined_at: Mapped[datetime | None]
    quarantine_reason: Mapped[str | None] = mapped_column(Text)


class Bundle(Base):
    """A packed project directory, content-addressed, fetched by workers once per hash."""

    __tablename__ = "bundles"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    #: the archive; empty once pruned (see ``pruned_at``)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: when a ``dtf run --code bundle`` last packed it (None: ``created_at``); pruning goes by it
    last_used_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    #: when its archive was dropped, unused for DTF_BUNDLE_KEEP_DAYS (dtf/bundles.py)
    pruned_at: Mapped[datetime | None]


class TestDuration(Base):
    """How long a test takes on a kind of hardware: an exponentially weighted mean."""

    __test__ = False
    __tablename__ = "test_durations"
    __table_args__ = (UniqueConstraint("suite", "hardware", "nodeid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    suite: Mapped[str] = mapped_column(Text)
    hardware: Mapped[str] = mapped_column(String(32))
    nodeid: Mapped[str] = mapped_column(Text)
    mean_s: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntegrationOutcome(Base):
    """What an integration (a plugin) did for a run: ok, or a one-line error without secrets."""

    __tablename__ = "integration_outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    integration: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str | None] = mapped_column(String(32))
    ok: Mapped[bool]
    error: Mapped[str | None] = mapped_column(Text)
    #: where its result can be seen (a comment, a status, a test run), if anywhere
    url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryStat(Base):
    """The performance table: how a recovery strategy has done against a failure class."""

    __tablename__ = "recovery_stats"

    failure_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    #: sums over attempts: seconds to recover, CPU seconds, memory (MiB x seconds)
    recover_s: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    memory_mib_s: Mapped[float] = mapped_column(Float, default=0.0)
    #: tests the recoveries were for, and how many of them ended with a result of their own
    tests_affected: Mapped[int] = mapped_column(Integer, default=0)
    tests_recovered: Mapped[int] = mapped_column(Integer, default=0)
    #: the latest outcomes, newest last (1 success, 0 failure), for the stability score
    recent: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryEvent(Base):
    """One recovery: what failed, where, the strategy chosen and how it ended."""

    __tablename__ = "recovery_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[str | None] = mapped_column(String(36), index=True)
    nodeid: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    failure_class: Mapped[str] = mapped_column(String(32))
    level: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(64))
    #: started -> succeeded | failed
    status: Mapped[str] = mapped_column(String(16), default="started")
    detail: Mapped[str | None] = mapped_column(Text)
    tests: Mapped[int] = mapped_column(Integer, default=0)
    recover_s: Mapped[float | None] = mapped_column(Float)
    cpu_s: Mapped[float | None] = mapped_column(Float)
    memory_mib_s: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class FlakyTest(Base):
    """A test that failed and then passed on a rerun, per suite and test id."""

    __test__ = False
    __tablename__ = "flaky_tests"

    suite: Mapped[str] = mapped_column(Text, primary_key=True)
    nodeid: Mapped[str] = mapped_column(Text, primary_key=True)
    times: Mapped[int] = mapped_column(Integer, default=0)
    last_run_id: Mapped[str | None] = mapped_column(String(36))
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class BenchmarkResult(Base):
    """One measurement of a benchmark: a model on a hardware kind, batch size, shape, precision.

    Rows are made when the run is planned (``pending``); the job that measures
    them (one Celery task per hardware kind and batch size, ``job``) fills them in.
    """

    __tablename__ = "benchmark_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("run_tasks.id", ondelete="CASCADE"))
    #: the Celery task id of the job measuring this row (shared by its shapes)
    job: Mapped[str] = mapped_column(String(36), index=True)
    model: Mapped[str] = mapped_column(String(255), index=True)
    runtime: Mapped[str] = mapped_column(String(255))
    hardware: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(255))
    batch_size: Mapped[int]
    #: "128" (a sequence length), "3x224x224" (an input shape) or "" (the runtime's default)
    shape: Mapped[str] = mapped_column(String(64), default="")
    precision: Mapped[str] = mapped_column(String(8))
    warmup: Mapped[int]
    iterations: Mapped[int]
    #: pending -> running -> done | failed | broken | skipped
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(255))
    #: seconds per measured iteration, in the order they ran
    samples: Mapped[list[Any]] = mapped_column(default=list)
    latency_mean_ms: Mapped[float | None] = mapped_column(Float)
    latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_p90_ms: Mapped[float | None] = mapped_column(Float)
    latency_p99_ms: Mapped[float | None] = mapped_column(Float)
    #: items (batch size x iterations) per second of measured time
    throughput: Mapped[float | None] = mapped_column(Float)
    load_s: Mapped[float | None] = mapped_column(Float)
    peak_rss_mb: Mapped[float | None] = mapped_column(Float)
    peak_gpu_mb: Mapped[float | None] = mapped_column(Float)
    environment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: against the baseline when measured: regression | improvement | unchanged | inconclusive
    verdict: Mapped[str | None] = mapped_column(String(16))
    comparison: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: a regression of this row fails the run (the task's ``fail_on_regression``)
    gate: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class BenchmarkBaseline(Base):
    """The result a configuration is compared with: set by ``dtf baseline set RUN``."""

    __tablename__ = "benchmark_baselines"
    __table_args__ = (
        UniqueConstraint("model", "runtime", "hardware", "batch_size", "shape", "precision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    runtime: Mapped[str] = mapped_column(String(255))
    hardware: Mapped[str] = mapped_column(String(32))
    batch_size: Mapped[int]
    shape: Mapped[str] = mapped_column(String(64))
    precision: Mapped[str] = mapped_column(String(8))
    result_id: Mapped[int] = mapped_column(
        ForeignKey("benchmark_results.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[str] = mapped_column(String(36))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
