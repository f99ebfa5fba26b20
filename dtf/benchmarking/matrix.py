"""The compatibility matrix: model x hardware, from test results and benchmark results.

A test counts for a model when it is marked ``@pytest.mark.dtf(model="name")``
(or its task's ``requirements.model`` names one); its hardware is the one its
batch ran on. A cell is **fails** when a test failed there or a benchmark
failed, **supported** when tests passed or a benchmark finished and nothing
failed, **not run** otherwise. A supported cell names its fastest
configuration (highest throughput). Without a run, each cell comes from the
newest of the last ``HISTORY_RUNS`` runs that has anything for it.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from dtf.db.models import Batch, BenchmarkResult, Run, TestItem
from dtf.spec import HARDWARE_KINDS

HISTORY_RUNS = 100
FAILING_TESTS = ("failed", "error", "crashed", "timed_out", "out_of_memory")
PASSING_TESTS = ("passed", "xpassed", "flaky")
STATES = ("supported", "fails", "not run")


@dataclass
class Cell:
    """What one run says about one model on one kind of hardware."""

    model: str
    hardware: str
    run_id: str = ""
    tests: dict[str, int] = field(default_factory=dict)  # outcomes counted
    benchmarks: dict[str, int] = field(default_factory=dict)  # statuses counted
    fastest: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        failing = sum(self.tests.get(o, 0) for o in FAILING_TESTS) + self.benchmarks.get(
            "failed", 0
        )
        if failing:
            return "fails"
        passing = sum(self.tests.get(o, 0) for o in PASSING_TESTS) + self.benchmarks.get("done", 0)
        return "supported" if passing else "not run"

    def describe(self) -> str:
        """``supported: 312 items/s (batch 32, seq 128, fp32)`` or ``fails: 2 tests failed``."""
        state = self.state
        if state == "supported" and self.fastest:
            return f"{state}: {fastest_text(self.fastest)}"
        if state == "fails":
            failed = sum(self.tests.get(o, 0) for o in FAILING_TESTS)
            parts = [f"{failed} test{'s' if failed != 1 else ''} failed"] if failed else []
            if self.benchmarks.get("failed"):
                parts.append(f"{self.benchmarks['failed']} benchmark(s) failed")
            return f"{state}: {', '.join(parts)}"
        if state == "supported":
            passed = sum(self.tests.get(o, 0) for o in PASSING_TESTS)
            return f"{state}: {passed} test{'s' if passed != 1 else ''} passed"
        return state + (f": {self.notes[0]}" if self.notes else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "hardware": self.hardware, "state": self.state,
            "run_id": self.run_id, "tests": self.tests, "benchmarks": self.benchmarks,
            "fastest": self.fastest, "notes": self.notes,
        }  # fmt: skip


def fastest_text(fastest: dict[str, Any]) -> str:
    shape = fastest.get("shape")
    detail = [f"batch {fastest['batch_size']}"]
    if shape:
        detail.append(f"seq {shape}" if "x" not in shape else f"shape {shape}")
    detail += [fastest["precision"], fastest["runtime"]]
    return (
        f"{_number(fastest['throughput'], 4)} items/s, "
        f"p50 {_number(fastest['latency_p50_ms'], 3)} ms "
        f"({', '.join(detail)})"
    )


def _number(value: float, digits: int) -> str:
    """``digits`` significant digits, never in exponent notation."""
    return f"{value:.0f}" if value >= 10 ** (digits - 1) else f"{value:.{digits}g}"


@dataclass
class Matrix:
    models: list[str]
    hardware: list[str]
    cells: dict[tuple[str, str], Cell]
    run_id: str | None = None

    def cell(self, model: str, hardware: str) -> Cell:
        return self.cells.get((model, hardware)) or Cell(model, hardware)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "models": self.models,
            "hardware": self.hardware,
            "cells": [self.cell(m, h).to_dict() for m in self.models for h in self.hardware],
        }


def build_matrix(session: Session, run_id: str | None = None) -> Matrix:
    """The matrix of one run, or of the recent history when ``run_id`` is None."""
    if run_id is not None:
        runs = [run_id]
    else:
        runs = list(
            session.scalars(select(Run.id).order_by(Run.created_at.desc()).limit(HISTORY_RUNS))
        )
    benchmarks = [
        {column: getattr(row, column) for column in _BENCHMARK_COLUMNS}
        for row in session.scalars(
            select(BenchmarkResult)
            .filter(BenchmarkResult.run_id.in_(runs))
            .order_by(BenchmarkResult.id)
        )
    ]
    tests = session.execute(
        select(TestItem.run_id, TestItem.requirements, TestItem.outcome, Batch.hardware)
        .join(Batch, Batch.id == TestItem.batch_id)
        .filter(
            TestItem.run_id.in_(runs),
            cast(TestItem.requirements, Text).like('%"model"%'),
        )
    ).all()
    return _matrix(runs, benchmarks, [tuple(row) for row in tests], run_id)


def report_matrix(records: dict[str, Any]) -> Matrix:
    """The matrix of one run from the rows a report already read (``dtf.reporting.model``)."""
    run_id = records["run"]["id"]
    hardware = {batch["id"]: batch.get("hardware") for batch in records["batches"]}
    tests = [
        (run_id, item.get("requirements"), item.get("outcome"), hardware.get(item["batch_id"]))
        for item in records["items"]
        if item.get("batch_id")
    ]
    return _matrix([run_id], records.get("benchmarks", []), tests, run_id)


_BENCHMARK_COLUMNS = (
    "run_id", "model", "hardware", "status", "error", "batch_size", "shape", "precision",
    "runtime", "throughput", "latency_p50_ms", "device",
)  # fmt: skip

#: (run id, requirements, outcome, hardware kind) of a test item
TestRow = tuple[str, dict[str, Any] | None, str | None, str | None]


def _matrix(
    runs: list[str], benchmarks: list[dict[str, Any]], tests: list[TestRow], run_id: str | None
) -> Matrix:
    by_run: dict[str, dict[tuple[str, str], Cell]] = defaultdict(dict)
    for row in benchmarks:
        _add_benchmark(_cell(by_run, row["run_id"], row["model"], row["hardware"]), row)
    for run, requirements, outcome, hardware in tests:
        model = (requirements or {}).get("model")
        if model and hardware:
            cell = _cell(by_run, run, model, hardware)
            key = outcome or "not finished"
            cell.tests[key] = cell.tests.get(key, 0) + 1
    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:  # newest first: the first run with data for a cell wins
        for key, cell in by_run.get(run, {}).items():
            cells.setdefault(key, cell)
    models = sorted({model for model, _ in cells}, key=str.lower)
    seen = {hardware for _, hardware in cells}
    hardware = [kind for kind in HARDWARE_KINDS if kind in seen]
    return Matrix(models=models, hardware=hardware, cells=cells, run_id=run_id)


def _cell(by_run: dict, run: str, model: str, hardware: str) -> Cell:
    cells = by_run[run]
    if (model, hardware) not in cells:
        cells[(model, hardware)] = Cell(model, hardware, run_id=run)
    return cells[(model, hardware)]


def _add_benchmark(cell: Cell, row: dict[str, Any]) -> None:
    status = row["status"]
    cell.benchmarks[status] = cell.benchmarks.get(status, 0) + 1
    if status != "done" and row["error"] and row["error"] not in cell.notes:
        cell.notes.append(row["error"])
    throughput = row["throughput"] or 0.0
    if status == "done" and (cell.fastest is None or throughput > cell.fastest["throughput"]):
        cell.fastest = {
            "batch_size": row["batch_size"], "shape": row["shape"],
            "precision": row["precision"], "runtime": row["runtime"],
            "throughput": throughput, "latency_p50_ms": row["latency_p50_ms"],
            "device": row["device"],
        }  # fmt: skip


def matrix_markdown(matrix: Matrix) -> str:
    """The matrix as a Markdown table (empty string when there is nothing to show)."""
    if not matrix.models:
        return ""
    lines = [
        "| model | " + " | ".join(matrix.hardware) + " |",
        "| --- |" + " --- |" * len(matrix.hardware),
    ]
    for model in matrix.models:
        cells = [_md(matrix.cell(model, kind).describe()) for kind in matrix.hardware]
        lines.append(f"| {_md(model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def matrix_html(matrix: Matrix) -> str:
    """The matrix as an HTML table; each cell starts with a badge of its state."""
    if not matrix.models:
        return ""
    head = "".join(f"<th>{html.escape(kind)}</th>" for kind in matrix.hardware)
    body = []
    for model in matrix.models:
        cells = []
        for kind in matrix.hardware:
            cell = matrix.cell(model, kind)
            state, _, detail = cell.describe().partition(": ")
            badge = f'<span class="badge {_BADGES[state]}">{html.escape(state)}</span>'
            cells.append(f"<td>{badge} {html.escape(detail)}</td>")
        body.append(f"<tr><th>{html.escape(model)}</th>{''.join(cells)}</tr>")
    return (
        '<table class="matrix"><thead><tr><th>model</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n"
    )


#: Badge classes of the states, as the HTML report styles outcomes.
_BADGES = {"supported": "o-passed", "fails": "o-failed", "not run": "o-not_run"}
