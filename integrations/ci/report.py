"""What the CI providers report: the run's results, its Markdown and its JUnit XML."""

from __future__ import annotations

from typing import Any

from dtf.integrations.ci.base import FinishedRun
from sqlalchemy import select

from dtf.db.models import TestResult
from dtf.db.session import session_scope

#: The tail of a failure's traceback kept per result, in characters.
MAX_LONGREPR = 4000


def finished_run(db_url: str, run: dict[str, Any], summary: dict[str, Any]) -> FinishedRun:
    """Read the run's results and render its reports once for every provider."""
    run_id = run["id"]
    with session_scope(db_url) as session:
        rows = session.scalars(
            select(TestResult).filter_by(run_id=run_id).order_by(TestResult.id)
        ).all()
        results = [
            {
                "nodeid": row.nodeid,
                "outcome": row.outcome,
                "when": row.when,
                "duration": row.duration,
                "worker": row.worker,
                "longrepr": (row.longrepr or "")[-MAX_LONGREPR:] or None,
            }
            for row in rows
        ]
    return FinishedRun(
        run=run,
        summary=summary,
        results=results,
        markdown=render(db_url, run_id, "markdown"),
        junit_xml=render(db_url, run_id, "junit"),
    )


def render(db_url: str, run_id: str, fmt: str) -> str:
    """The run's report in ``fmt``, as ``dtf report --format FMT`` prints it."""
    from dtf.reporting.formats import read_report
    from dtf.reporting.formats import render as render_format

    return render_format(read_report(db_url, run_id), fmt)
