"""A run as JSON: every field the database holds for it, plus the report's totals."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from dtf.reporting.model import Group, RunReport

#: Bumped when a key is renamed or removed (adding keys keeps the version).
SCHEMA_VERSION = 1


def run_json(report: RunReport) -> dict[str, Any]:
    """The run, its summary, tasks, batches with attempts, items, every result line, the
    workers involved, the code bundle (without its bytes) and the breakdowns."""
    records = report.records
    return {
        "schema_version": SCHEMA_VERSION,
        "run": records["run"],
        "summary": {
            "status": report.status,
            "total": report.total,
            "finished": report.finished,
            "counts": report.counts,
            "flaky": len(report.flaky),
            "exit_code": report.exit_code,
            "wall_s": report.wall_s,
            "test_s": report.test_s,
            "broken": report.broken,
            "stopped": report.stopped,
        },
        "tasks": records["tasks"],
        "batches": records["batches"],
        "items": records["items"],
        "results": records["results"],
        "workers": records["workers"],
        "bundle": records["bundle"],
        "recoveries": records["recoveries"],
        "benchmarks": records["benchmarks"],
        "breakdown": {
            "hardware": [_group(g) for g in report.by_hardware],
            "workers": [_group(g) for g in report.by_worker],
            "modules": [_group(g) for g in report.by_module],
        },
    }


def _group(group: Group) -> dict[str, Any]:
    return asdict(group)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def render_json(report: RunReport) -> str:
    return json.dumps(run_json(report), indent=2, default=_encode, ensure_ascii=False) + "\n"
