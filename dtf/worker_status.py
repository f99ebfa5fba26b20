"""``dtf workers``: the worker registry: who is there, what they serve, how busy they are.

Workers write their rows themselves (``workers/registry.py``); this module only
reads them. A worker is ``online`` while its heartbeat is fresh, ``lost`` when
its last beat is older than ``LOST_AFTER_BEATS`` heartbeat intervals (killed,
or cut off), ``offline`` after a clean shutdown, and ``quarantined`` while recovery
keeps it from taking work (docs/recovery.md).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from dtf.inventory import GPU_KINDS

if TYPE_CHECKING:
    from dtf.db.models import Worker

LOST_AFTER_BEATS = 3
#: ``dtf workers`` hides workers offline or lost for longer than this (``--all`` shows them)
HIDE_GONE_AFTER_S = 24 * 3600


def worker_rows(session, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every registered worker as a JSON-ready dict, by hostname.

    Each row has ``hostname``, ``state`` (online | lost | offline), ``queues``,
    ``healthy_queues`` (queues whose last check passed or that have no check
    result), ``bad_queues`` ({queue: reason}), ``inventory``, ``hardware``
    (kinds), ``gpus`` (device names), ``concurrency``, ``active_tasks``,
    ``version``, ``pid``, ``started_at`` and ``last_seen`` (ISO), and
    ``last_seen_age_s``.
    """
    from sqlalchemy import select

    from dtf.db.models import Worker

    now = _aware(now) if now else datetime.now(timezone.utc)
    return [_row(w, now) for w in session.scalars(select(Worker).order_by(Worker.hostname))]


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; dtf writes UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _row(worker: Worker, now: datetime) -> dict[str, Any]:
    last_seen = _aware(worker.last_seen)
    age = max(0.0, (now - last_seen).total_seconds())
    state = worker.state
    if state == "online" and age > LOST_AFTER_BEATS * worker.heartbeat_interval:
        state = "lost"
    quarantine = getattr(worker, "quarantined_at", None)
    if state == "online" and quarantine is not None:
        state = "quarantined"  # recovery level 4: it takes no work until released
    health = worker.queue_health or {}
    bad = {q: health[q].get("reason") for q in worker.queues if q in health and not health[q]["ok"]}
    probes = (worker.inventory or {}).get("probes") or {}
    ok_probes = {kind: p for kind, p in probes.items() if p.get("ok")}
    return {
        "hostname": worker.hostname,
        "state": state,
        "queues": list(worker.queues),
        "healthy_queues": [q for q in worker.queues if q not in bad],
        "bad_queues": bad,
        "queue_health": health,
        "inventory": worker.inventory or {},
        "hardware": ["cpu", *ok_probes],
        "gpus": [
            d.get("name", "?")
            for kind, p in ok_probes.items()
            if kind in GPU_KINDS
            for d in p.get("devices") or []
        ],
        "concurrency": worker.concurrency,
        "active_tasks": worker.active_tasks,
        "version": worker.version,
        "pid": worker.pid,
        "heartbeat_interval": worker.heartbeat_interval,
        "started_at": _aware(worker.started_at).isoformat(),
        "last_seen": last_seen.isoformat(),
        "last_seen_age_s": round(age, 1),
        "quarantined_at": _aware(quarantine).isoformat() if quarantine else None,
        "quarantine_reason": getattr(worker, "quarantine_reason", None),
    }


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{seconds:.0f}s ago"


def format_row(row: dict[str, Any]) -> str:
    """A worker as three lines of text."""
    queues = [
        f"{q} [bad: {row['bad_queues'][q]}]" if q in row["bad_queues"] else q for q in row["queues"]
    ]
    hardware = ", ".join(row["hardware"])
    if row["gpus"]:
        hardware += f" ({', '.join(row['gpus'])})"
    return (
        f"{row['hostname']}  {row['state']}  load {row['active_tasks']}/{row['concurrency']}"
        f"  last seen {_age(row['last_seen_age_s'])}\n"
        f"  queues:   {', '.join(queues) or '-'}\n"
        f"  hardware: {hardware}"
        + (
            f"\n  quarantined: {row['quarantine_reason']} "
            f"(`dtf recovery release {row['hostname']}` takes it back)"
            if row.get("quarantined_at")
            else ""
        )
    )


def _read_rows(url: str) -> list[dict[str, Any]]:
    from dtf.db.schema import database_exists, ensure_readable
    from dtf.db.session import session_scope

    if not database_exists(url):
        return []  # the embedded default before anything ran: no worker registered
    ensure_readable(url)
    with session_scope(url) as session:
        return worker_rows(session)


def long_gone(row: dict[str, Any]) -> bool:
    """Offline or lost for longer than :data:`HIDE_GONE_AFTER_S`."""
    return row["state"] in ("offline", "lost") and row["last_seen_age_s"] > HIDE_GONE_AFTER_S


@click.command("workers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--all", "show_all", is_flag=True,
    help=f"Also workers offline or lost for over {HIDE_GONE_AFTER_S // 3600} h.",
)  # fmt: skip
def workers(as_json: bool, show_all: bool) -> None:
    """List registered workers: state, queues, hardware, load, last heartbeat
    (not those offline or lost for over a day, unless --all)."""
    from dtf.config import load_settings

    rows = _read_rows(load_settings().database_url)
    shown = rows if show_all else [row for row in rows if not long_gone(row)]
    hidden = len(rows) - len(shown)
    footer = (
        f"({hidden} worker(s) offline or lost for over {HIDE_GONE_AFTER_S // 3600} h "
        "not shown; --all lists them)"
    )
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
    elif not rows:
        click.echo("no workers have registered")
    else:
        click.echo("\n".join(format_row(row) for row in shown) if shown else "no worker is up")
        if hidden:
            click.echo(footer)
