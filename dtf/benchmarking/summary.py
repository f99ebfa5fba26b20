"""A run's benchmarks in its summary: progress, failures, gating regressions, broken jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.db.models import BenchmarkResult

#: Statuses of a benchmark row that are final.
FINISHED = ("done", "failed", "broken", "skipped")


@dataclass
class BenchmarkProgress:
    """The benchmark rows of a run, counted."""

    total: int
    counts: dict[str, int] = field(default_factory=dict)  # rows by status
    #: regressions of tasks that asked to fail on one (``fail_on_regression``)
    gating_regressions: int = 0
    broken: list[str] = field(default_factory=list)  # one line per broken job
    open_queues: set[str] = field(default_factory=set)

    @property
    def finished(self) -> int:
        return sum(self.counts.get(status, 0) for status in FINISHED)

    @property
    def failing(self) -> int:
        """What makes the run fail: measurements that failed and gating regressions."""
        return self.counts.get("failed", 0) + self.gating_regressions


def benchmark_progress(session: Session, run_id: str) -> BenchmarkProgress | None:
    """The run's benchmark rows counted; None when the run has none."""
    rows = session.execute(
        select(
            BenchmarkResult.job, BenchmarkResult.status, BenchmarkResult.queue,
            BenchmarkResult.verdict, BenchmarkResult.gate, BenchmarkResult.error,
            BenchmarkResult.hardware, BenchmarkResult.batch_size,
        ).filter_by(run_id=run_id)
    ).all()  # fmt: skip
    if not rows:
        return None
    progress = BenchmarkProgress(total=len(rows))
    broken_jobs: dict[str, str] = {}
    for job, status, queue, verdict, gate, error, hardware, batch_size in rows:
        progress.counts[status] = progress.counts.get(status, 0) + 1
        if status in ("pending", "running"):
            progress.open_queues.add(queue)
        if status == "done" and verdict == "regression" and gate:
            progress.gating_regressions += 1
        if status == "broken" and job not in broken_jobs:
            broken_jobs[job] = (
                f"benchmark job {job[:12]} ({hardware}, batch size {batch_size}) "
                f"on queue {queue}: {error}"
            )
    progress.broken = list(broken_jobs.values())
    return progress


def benchmarks_part(progress: BenchmarkProgress) -> str:
    """``3/6 benchmarks (1 failed, 1 regression)`` for the progress line."""
    counts = progress.counts
    notes = [f"{counts[s]} {s}" for s in ("failed", "broken", "skipped") if counts.get(s)]
    if progress.gating_regressions:
        plural = "s" if progress.gating_regressions > 1 else ""
        notes.append(f"{progress.gating_regressions} regression{plural}")
    line = f"{progress.finished}/{progress.total} benchmarks"
    return line + (f" ({', '.join(notes)})" if notes else "")
