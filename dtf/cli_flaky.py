"""``dtf flaky``: the tests that failed and then passed on a rerun, most often first."""

from __future__ import annotations

import json

import click

from dtf.config import load_settings


@click.command("flaky")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def flaky(as_json: bool, limit: int) -> None:
    """List flaky tests: how often each passed only on a rerun, and the latest run."""
    from sqlalchemy import select

    from dtf.db.models import FlakyTest
    from dtf.db.schema import database_exists, ensure_readable
    from dtf.db.session import session_scope
    from dtf.errors import BadInput

    settings = load_settings()
    if not database_exists(settings.database_url):
        raise BadInput(f"no dtf database at {settings.database_url}: run something first")
    ensure_readable(settings.database_url)
    with session_scope(settings.database_url) as session:
        rows = [
            {
                "suite": row.suite,
                "nodeid": row.nodeid,
                "times": row.times,
                "last_run_id": row.last_run_id,
                "last_seen_at": row.last_seen_at.isoformat(),
            }
            for row in session.scalars(
                select(FlakyTest)
                .order_by(FlakyTest.times.desc(), FlakyTest.last_seen_at.desc())
                .limit(limit)
            )
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("dtf: no flaky test recorded")
        return
    for row in rows:
        click.echo(f"{row['times']:>4}x  {row['nodeid']}  (last: run {row['last_run_id']})")
