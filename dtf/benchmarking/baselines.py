"""Baselines: the result each configuration is compared with, and comparisons against them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.benchmarking.store import CONFIGURATION, baseline_of, compare_with
from dtf.db.models import BenchmarkBaseline, BenchmarkResult, RunTask, utcnow
from dtf.errors import BadInput


def configuration(row: BenchmarkResult) -> dict[str, Any]:
    return {name: getattr(row, name) for name in CONFIGURATION}


def set_baseline(session: Session, run_id: str) -> list[BenchmarkResult]:
    """Make every finished result of ``run_id`` the baseline of its configuration."""
    rows = list(
        session.scalars(
            select(BenchmarkResult)
            .filter_by(run_id=run_id, status="done")
            .order_by(BenchmarkResult.id)
        )
    )
    if not rows:
        raise BadInput(
            f"run {run_id} has no finished benchmark results to use as a baseline; "
            f"`dtf status {run_id}` shows what it did"
        )
    for row in rows:
        key = configuration(row)
        mark = session.scalar(select(BenchmarkBaseline).filter_by(**key))
        if mark is None:
            mark = BenchmarkBaseline(**key)
            session.add(mark)
        mark.result_id, mark.run_id, mark.set_at = row.id, run_id, utcnow()
    return rows


@dataclass
class BaselineRow:
    mark: BenchmarkBaseline
    result: BenchmarkResult


def list_baselines(session: Session, model: str | None = None) -> list[BaselineRow]:
    """Every baseline (of ``model`` only, if given), ordered by configuration."""
    query = select(BenchmarkBaseline, BenchmarkResult).join(
        BenchmarkResult, BenchmarkResult.id == BenchmarkBaseline.result_id
    )
    if model:
        query = query.filter(BenchmarkBaseline.model == model)
    order = [getattr(BenchmarkBaseline, name) for name in CONFIGURATION]
    return [BaselineRow(mark, result) for mark, result in session.execute(query.order_by(*order))]


@dataclass
class ComparedRow:
    result: BenchmarkResult
    baseline: BenchmarkResult | None
    verdict: str | None  # None: no baseline, or the result did not finish
    comparison: dict[str, Any] | None


def compare_run(session: Session, run_id: str) -> list[ComparedRow]:
    """Each benchmark result of ``run_id`` against today's baseline of its configuration."""
    rows = list(
        session.scalars(
            select(BenchmarkResult).filter_by(run_id=run_id).order_by(BenchmarkResult.id)
        )
    )
    if not rows:
        raise BadInput(f"run {run_id} has no benchmark results")
    thresholds: dict[int, float] = {}
    compared = []
    for row in rows:
        baseline = baseline_of(session, row) if row.status == "done" else None
        if baseline is None or baseline.id == row.id:
            compared.append(ComparedRow(row, baseline, None, None))
            continue
        if row.task_id not in thresholds:
            config = session.get(RunTask, row.task_id).spec.get("config", {})
            thresholds[row.task_id] = float(config.get("regression_threshold") or 0.05)
        verdict, details = compare_with(baseline, row, thresholds[row.task_id])
        compared.append(ComparedRow(row, baseline, verdict, details))
    return compared
