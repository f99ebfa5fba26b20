"""Benchmark rows in the database: made when a run is stored, filled in by the job that measures."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dtf.benchmarking.plan import shape_label
from dtf.benchmarking.regression import compare
from dtf.benchmarking.runner import JobOutcome, ShapeOutcome
from dtf.benchmarking.stats import LatencySummary
from dtf.db.models import BenchmarkBaseline, BenchmarkResult, Run, RunTask, utcnow
from dtf.db.session import session_scope
from dtf.scheduling.canvas import HeaderTask

#: The columns that say which configuration a result measured (and key its baseline).
CONFIGURATION = ("model", "runtime", "hardware", "batch_size", "shape", "precision")
#: Columns of a row that the child process needs, besides options and shapes.
JOB_FIELDS = (
    "model", "runtime", "hardware", "precision", "batch_size", "warmup", "iterations",
)  # fmt: skip


def store_planned_jobs(session: Session, run_id: str, task: RunTask, plan: Any) -> list[HeaderTask]:
    """Rows for every (job, shape) of a planned benchmark task; a header task per job that runs."""
    config = plan.spec.config
    headers = []
    for job in plan.jobs:
        job_id = uuid.uuid4().hex
        for shape in job.shapes:
            session.add(
                BenchmarkResult(
                    run_id=run_id,
                    task_id=task.id,
                    job=job_id,
                    model=config.model,
                    runtime=config.runtime,
                    hardware=job.hardware,
                    queue=job.queue,
                    batch_size=job.batch_size,
                    shape=shape_label(shape),
                    precision=config.precision,
                    warmup=config.warmup,
                    iterations=config.iterations,
                    status="skipped" if job.skipped else "pending",
                    error=job.skipped,
                    gate=config.fail_on_regression,
                    samples=[],
                    environment={},
                )
            )
        if not job.skipped:
            headers.append(HeaderTask("benchmark", job_id, job.queue, plan.priority, plan.timeout))
    return headers


@dataclass(frozen=True)
class JobWork:
    """What one job has to measure."""

    job: dict[str, Any]  # the child's job description (dtf.benchmarking.child)
    row_ids: dict[str, int]  # shape label -> result row, only rows not measured yet
    workdir: str
    bundle: str | None
    timeout: float
    threshold: float
    #: the task's retry_policy: a benchmark process that died is started again
    max_retries: int = 0
    retry_delay_s: float = 0.0


def start_job(db_url: str, job_id: str, worker: str | None) -> JobWork | None:
    """Mark the job's rows running and say what to measure; None when nothing is left.

    A redelivered job (its worker died) measures only the rows not finished yet.
    """
    with session_scope(db_url) as session:
        rows = list(
            session.scalars(
                select(BenchmarkResult)
                .filter_by(job=job_id)
                .filter(BenchmarkResult.status.in_(("pending", "running")))
                .order_by(BenchmarkResult.id)
            )
        )
        if not rows:
            if session.scalar(select(BenchmarkResult.id).filter_by(job=job_id)) is None:
                raise LookupError(f"benchmark job {job_id} is not in the database")
            return None
        now = utcnow()
        for row in rows:
            row.status, row.worker, row.started_at = "running", worker, now
        first = rows[0]
        session.execute(
            update(Run)
            .where(Run.id == first.run_id, Run.status == "pending")
            .values(status="running", started_at=now)
        )
        task = session.get(RunTask, first.task_id)
        config = task.spec.get("config", {})
        policy = task.spec.get("retry_policy") or {}
        job = {name: getattr(first, name) for name in JOB_FIELDS}
        job["options"] = config.get("options") or {}
        job["shapes"] = [[int(d) for d in row.shape.split("x") if d] for row in rows]
        return JobWork(
            job=job,
            row_ids={row.shape: row.id for row in rows},
            workdir=task.workdir,
            bundle=session.get(Run, first.run_id).bundle,
            timeout=task.timeout,
            threshold=float(config.get("regression_threshold") or 0.05),
            max_retries=int(policy.get("max_retries", 3)),
            retry_delay_s=float(policy.get("retry_delay_seconds") or 0.0),
        )


def record_job(db_url: str, work: JobWork, outcome: JobOutcome) -> dict[str, int]:
    """Store each shape's outcome, compared with its baseline; counts by status."""
    counts: dict[str, int] = {}
    with session_scope(db_url) as session:
        for label, row_id in work.row_ids.items():
            row = session.get(BenchmarkResult, row_id)
            shape = outcome.shapes.get(label) or ShapeOutcome(
                "failed", error="the benchmark process ended without measuring it"
            )
            _fill(session, row, shape, outcome, work.threshold)
            counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def _fill(
    session: Session, row: BenchmarkResult, shape: ShapeOutcome, job: JobOutcome, threshold: float
) -> None:
    row.status = shape.status
    row.error = shape.error
    # started_at: when the job was received until now; then when this shape's measuring began
    received = row.started_at
    row.started_at = _moment(shape.started_at) or received
    row.finished_at = _moment(shape.finished_at) or utcnow()
    row.load_s = job.load_s
    row.environment = {**job.environment, **shape.details}
    row.environment["received_at"] = received.isoformat() if received else None
    if shape.warmup_s is not None:
        row.environment["warmup_s"] = shape.warmup_s
    if job.processes:
        row.environment["measurement_processes"] = job.processes
    row.device = job.environment.get("device")
    if shape.status != "done":
        return
    stats = LatencySummary.of(shape.samples, row.batch_size)
    row.samples = shape.samples
    row.latency_mean_ms, row.latency_p50_ms = stats.mean_ms, stats.p50_ms
    row.latency_p90_ms, row.latency_p99_ms = stats.p90_ms, stats.p99_ms
    row.throughput = stats.throughput
    row.peak_rss_mb, row.peak_gpu_mb = shape.peak_rss_mb, shape.peak_gpu_mb
    baseline = baseline_of(session, row)
    if baseline is not None:
        row.verdict, row.comparison = compare_with(baseline, row, threshold)


def _moment(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds is not None else None


def baseline_of(session: Session, row: BenchmarkResult) -> BenchmarkResult | None:
    """The baseline result of ``row``'s configuration, if one was set."""
    key = {name: getattr(row, name) for name in CONFIGURATION}
    mark = session.scalar(select(BenchmarkBaseline).filter_by(**key))
    return session.get(BenchmarkResult, mark.result_id) if mark is not None else None


def compare_with(
    baseline: BenchmarkResult, row: BenchmarkResult, threshold: float
) -> tuple[str, dict[str, Any]]:
    """(verdict, what the comparison found) of ``row`` against ``baseline``."""
    result = compare(baseline.samples, row.samples, threshold)
    details = {
        **result.to_dict(),
        "baseline_run": baseline.run_id,
        "baseline_result": baseline.id,
        "baseline_p50_ms": baseline.latency_p50_ms,
        "baseline_device": baseline.device,
        "summary": result.describe(),
    }
    if baseline.device and row.device and baseline.device != row.device:
        details["note"] = f"the baseline ran on {baseline.device}, this on {row.device}"
    return result.verdict, _json_safe(details)


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN or infinity (an inconclusive comparison has NaN bounds).
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in values.items()
    }


def mark_job_broken(db_url: str, job_id: str, error: str) -> None:
    """The job could not run at all: its unmeasured rows say why."""
    with session_scope(db_url) as session:
        session.execute(
            update(BenchmarkResult)
            .where(
                BenchmarkResult.job == job_id,
                BenchmarkResult.status.in_(("pending", "running")),
            )
            .values(status="broken", error=error, finished_at=utcnow())
        )
