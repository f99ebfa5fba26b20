"""The plain dicts hooks receive (see :mod:`dtf.plugins.hookspecs` for their keys)."""

from __future__ import annotations

import os
import socket
from typing import Any

from dtf.config import Settings, redact
from dtf.labels import labels_of


def coordinator_payload(settings: Settings, command: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "command": command,
        "broker": redact(settings.broker_url),
        "database": redact(settings.database_url),
        "embedded": settings.embedded,
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def ci_of(run) -> dict[str, Any] | None:
    """The CI job a run was submitted from, or None."""
    if run is None or not getattr(run, "ci_provider", None):
        return None
    return {
        "provider": run.ci_provider,
        "commit": run.ci_commit,
        "branch": run.ci_branch,
        "pull_request": run.ci_pull_request,
        "build_url": run.ci_build_url,
    }


def run_payload(run) -> dict[str, Any]:
    """A ``runs`` row as a hook sees it."""
    ci = ci_of(run)
    spec = dict(run.spec or {})
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "labels": labels_of(run),
        "workdir": run.workdir,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
        "ci": ci,
        "spec": spec,
    }


def summary_payload(summary, failing=()) -> dict[str, Any]:
    """A :class:`dtf.summary.RunSummary` and its failing results as a hook sees them."""
    return {
        "run_id": summary.run_id,
        "status": summary.status,
        "exit_code": summary.exit_code,
        "total": summary.total,
        "finished": summary.finished,
        "counts": dict(summary.counts),
        "failures": [
            {"nodeid": r.nodeid, "outcome": r.outcome, "message": last_line(r.longrepr)}
            for r in failing
        ],
        "broken": list(summary.broken),
    }


def task_payload(
    run_id: str,
    kind: str,
    key: str | int,
    *,
    task_id: int | None = None,
    queue: str | None = None,
    hardware: str | None = None,
    size: int | None = None,
    priority: int | None = None,
    status: str | None = None,
    worker: str | None = None,
    attempt: int | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "kind": kind,
        "id": str(key),
        "task_id": task_id,
        "queue": queue,
        "hardware": hardware,
        "size": size,
        "priority": priority,
        "status": status,
        "worker": worker,
        "attempt": attempt,
        "error": error,
    }


def result_payload(record, *, run_id: str, batch_id: str | None, worker: str | None) -> dict:
    """One stored result line (:class:`dtf.executor.records.TestRecord`)."""
    return {
        "run_id": run_id,
        "batch_id": batch_id,
        "nodeid": record.nodeid,
        "outcome": record.outcome,
        "when": record.when,
        "duration": record.duration,
        "worker": worker,
        "message": last_line(record.longrepr),
    }


def last_line(text: str | None, limit: int = 300) -> str | None:
    lines = (text or "").strip().splitlines()
    return lines[-1][:limit] if lines else None
