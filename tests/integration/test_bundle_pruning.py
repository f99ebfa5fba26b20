"""The ``bundles`` table is pruned: an archive unused for DTF_BUNDLE_KEEP_DAYS (30)
whose runs all ended is dropped, its row kept for those runs; a row no run names goes
(issue 16, item 7). Times are set in the data."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from dtf.bundles import PackedBundle, fetch, prune, store
from dtf.db.models import Bundle, Run
from dtf.db.schema import ensure_schema
from dtf.db.session import session_scope

NOW = datetime(2030, 6, 1, tzinfo=timezone.utc)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def packed(name: str) -> PackedBundle:
    return PackedBundle(sha256=(name * 64)[:64], data=f"archive {name}".encode(), files=1)


@pytest.fixture
def db(database_url) -> str:
    ensure_schema(database_url, create=True)
    return database_url


def run_with(db: str, bundle: PackedBundle, created: datetime, status: str = "passed") -> None:
    with session_scope(db) as session:
        session.add(
            Run(id=str(uuid.uuid4()), workdir=".", bundle=bundle.sha256, status=status,
                created_at=created)
        )  # fmt: skip


def row(db: str, bundle: PackedBundle) -> Bundle | None:
    with session_scope(db) as session:
        return session.get(Bundle, bundle.sha256)


def test_an_old_bundle_loses_its_archive_and_keeps_its_row_for_its_runs(db):
    old = packed("a")
    store(db, old, now=days_ago(40))
    run_with(db, old, days_ago(40))
    prune(db, now=NOW)
    kept = row(db, old)
    assert kept is not None and kept.data == b"" and kept.size == len(old.data)
    assert kept.pruned_at is not None


def test_an_old_bundle_no_run_names_is_deleted(db):
    orphan = packed("b")
    store(db, orphan, now=days_ago(31))
    prune(db, now=NOW)
    assert row(db, orphan) is None


def test_bundles_used_within_the_keep_days_or_by_an_unfinished_run_are_kept(db):
    recent, running, rerun = packed("c"), packed("d"), packed("e")
    store(db, recent, now=days_ago(29))
    store(db, running, now=days_ago(60))
    run_with(db, running, days_ago(60), status="running")
    store(db, rerun, now=days_ago(60))
    run_with(db, rerun, days_ago(2))  # a run made without packing again
    prune(db, now=NOW)
    for bundle in (recent, running, rerun):
        assert row(db, bundle).data == bundle.data and row(db, bundle).pruned_at is None


def test_storing_a_bundle_prunes_and_the_keep_days_are_a_setting(db, monkeypatch):
    monkeypatch.setenv("DTF_BUNDLE_KEEP_DAYS", "3")
    old, new = packed("f"), packed("0")
    store(db, old, now=days_ago(4))
    store(db, new, now=NOW)
    assert row(db, old) is None and row(db, new) is not None


def test_a_pruned_bundle_packed_again_gets_its_archive_back(db):
    bundle = packed("1")
    store(db, bundle, now=days_ago(40))
    run_with(db, bundle, days_ago(40))
    prune(db, now=NOW)
    store(db, bundle, now=NOW)
    again = row(db, bundle)
    assert again.data == bundle.data and again.pruned_at is None
    assert again.last_used_at.replace(tzinfo=again.last_used_at.tzinfo or timezone.utc) == NOW


def test_a_worker_asked_for_a_pruned_bundle_says_so(db, tmp_path):
    bundle = packed("2")
    store(db, bundle, now=days_ago(40))
    run_with(db, bundle, days_ago(40))
    prune(db, now=NOW)
    with pytest.raises(LookupError, match=r"pruned.*DTF_BUNDLE_KEEP_DAYS"):
        fetch(db, bundle.sha256, tmp_path / "bundles")


def test_the_migration_keeps_the_bundles_and_runs_already_stored(database_url):
    """0013 only adds columns: on SQLite, recreating ``bundles`` would trip the foreign
    key runs hold on it."""
    from alembic import command
    from sqlalchemy import text

    from dtf.db.schema import alembic_config
    from dtf.db.session import get_engine

    command.upgrade(alembic_config(database_url), "0012")
    with get_engine(database_url).begin() as connection:
        connection.execute(
            text("INSERT INTO bundles (sha256, size, data, created_at) "
                 "VALUES ('s', 1, :data, :at)"),
            {"data": b"x", "at": days_ago(3)},
        )  # fmt: skip
        connection.execute(
            text("INSERT INTO runs (id, status, spec, labels, workdir, bundle, created_at) "
                 "VALUES ('r', 'passed', '{}', '{}', '.', 's', :at)"),
            {"at": days_ago(3)},
        )  # fmt: skip
    ensure_schema(database_url, create=True)
    with session_scope(database_url) as session:
        bundle = session.get(Bundle, "s")
        assert bundle.data == b"x" and bundle.last_used_at == bundle.created_at
        assert session.get(Run, "r").bundle == "s"
