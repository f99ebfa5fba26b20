"""``dtf recovery``: the performance table, a run's recoveries, releasing a quarantined worker."""

from __future__ import annotations

import json

import click

from dtf.config import load_settings


def _session_url() -> str:
    from dtf.cli import _prepare_read

    settings = load_settings()
    _prepare_read(settings)
    return settings.database_url


@click.group("recovery")
def recovery() -> None:
    """Infrastructure recovery: the performance table and the recoveries of a run."""


@recovery.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(as_json: bool) -> None:
    """The performance table: per failure class and strategy, how recovery has done."""
    from dtf.db.session import session_scope
    from dtf.recovery.report import stats_rows

    with session_scope(_session_url()) as session:
        rows = stats_rows(session)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no recoveries recorded yet")
        return
    header = (
        f"{'class':<19}{'level':<13}{'strategy':<21}{'tries':>6}{'ok':>5}"
        f"{'mean s':>8}{'cpu s':>8}{'MiB*s':>9}{'score':>7}"
    )
    click.echo(header)
    for row in rows:
        click.echo(
            f"{row['failure_class']:<19}{row['level']} {row['level_name']:<11}"
            f"{row['strategy']:<21}{row['attempts']:>6}{row['successes']:>5}"
            f"{row['mean_recover_s']:>8.2f}{row['cpu_s']:>8.2f}{row['memory_mib_s']:>9.0f}"
            f"{row['score']:>7.3f}"
        )


@recovery.command("events")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def events(run_id: str | None, as_json: bool) -> None:
    """The recoveries of a run (the latest when RUN is omitted), in order."""
    from sqlalchemy import select

    from dtf.cli import _resolve_run
    from dtf.db.models import RecoveryEvent
    from dtf.db.session import session_scope
    from dtf.recovery.table import event_dict

    with session_scope(_session_url()) as session:
        run_id = _resolve_run(session, run_id)
        rows = [
            event_dict(e)
            for e in session.scalars(
                select(RecoveryEvent).filter_by(run_id=run_id).order_by(RecoveryEvent.id)
            )
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"run {run_id}: no recoveries")
    for row in rows:
        where = row["nodeid"] or f"batch {row['batch_id']}"
        click.echo(
            f"{row['failure_class']:<18} L{row['level']} {row['strategy']:<20} "
            f"{row['status']:<10} {where} on {row['worker'] or '?'}"
        )


@recovery.command("release")
@click.argument("hostname")
def release(hostname: str) -> None:
    """Take a quarantined worker back: it consumes its queues again at its next heartbeat.

    A worker that is not quarantined is left as it is (exit 0)."""
    from dtf.db.models import Worker
    from dtf.db.session import session_scope
    from dtf.errors import BadInput

    with session_scope(_session_url()) as session:
        worker = session.get(Worker, hostname)
        if worker is None:
            raise BadInput(f"no worker named {hostname!r}; `dtf workers` lists them")
        if worker.quarantined_at is None:
            click.echo(f"{hostname} is not quarantined: nothing to release")
            return
        worker.quarantined_at = None
        worker.quarantine_reason = None
    click.echo(f"{hostname} released from quarantine")
