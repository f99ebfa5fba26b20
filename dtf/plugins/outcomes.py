"""Integration outcomes: which plugin did what for a run, stored for ``dtf status RUN``."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.config import load_settings
from dtf.db.models import IntegrationOutcome
from dtf.db.session import session_scope

logger = logging.getLogger("dtf.plugins")


def record_outcome(
    run_id: str,
    integration: str,
    *,
    ok: bool,
    error: str | None = None,
    url: str | None = None,
    kind: str | None = None,
    database_url: str | None = None,
) -> bool:
    """Store one outcome (``error`` must already be free of secrets); never raises."""
    line = " ".join(error.split())[:500] if error else None
    try:
        with session_scope(database_url or load_settings().database_url) as session:
            session.add(
                IntegrationOutcome(
                    run_id=run_id, integration=integration, kind=kind, ok=ok, error=line, url=url
                )
            )
    except Exception as exc:
        logger.warning(
            "dtf: could not store the outcome of %s for run %s: %s", integration, run_id, exc
        )
        return False
    return True


def outcomes(session: Session, run_id: str) -> list[dict[str, Any]]:
    """The run's integration outcomes, oldest first, as plain dicts."""
    rows = session.scalars(
        select(IntegrationOutcome).filter_by(run_id=run_id).order_by(IntegrationOutcome.id)
    )
    return [
        {
            "integration": row.integration,
            "kind": row.kind,
            "ok": row.ok,
            "error": row.error,
            "url": row.url,
        }
        for row in rows
    ]


def outcome_lines(session: Session, run_id: str) -> list[str]:
    """One line per integration outcome, for the run's summary."""
    lines = []
    for entry in outcomes(session, run_id):
        where = f" ({entry['url']})" if entry["url"] else ""
        if entry["ok"]:
            lines.append(f"INTEGRATION {entry['integration']}: ok{where}")
        else:
            lines.append(f"INTEGRATION {entry['integration']}: failed - {entry['error']}")
    return lines


def run_extras(session: Session, run_id: str) -> dict[str, Any]:
    """What ``dtf status`` adds for plugins: the run's CI job and its integration outcomes."""
    from dtf.db.models import Run
    from dtf.plugins.payloads import ci_of

    return {"ci": ci_of(session.get(Run, run_id)), "integrations": outcomes(session, run_id)}


def extras_lines(session: Session, run_id: str) -> list[str]:
    """``run_extras`` as the lines ``dtf status`` prints under the counts."""
    ci = run_extras(session, run_id)["ci"]
    lines = []
    if ci:
        parts = [f"{key} {ci[key]}" for key in ("commit", "branch", "pull_request") if ci[key]]
        lines.append(f"CI {ci['provider']}: {', '.join(parts)}".rstrip(": "))
        if ci["build_url"]:
            lines.append(f"   build {ci['build_url']}")
    return lines + outcome_lines(session, run_id)
