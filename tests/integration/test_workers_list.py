"""`dtf workers` hides workers long gone (offline or lost for over a day) unless --all."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dtf.db.models import Worker, utcnow
from dtf.db.session import session_scope
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration


def test_workers_long_offline_or_lost_are_hidden_unless_all(embedded_home, tmp_path):
    home, url = embedded_home
    now = utcnow()
    with session_scope(url) as session:
        session.add(Worker(hostname="up@a", version="1", pid=None, last_seen=now))
        session.add(Worker(hostname="left@b", version="1", pid=None, state="offline",
                           last_seen=now - timedelta(hours=2)))  # fmt: skip
        session.add(Worker(hostname="old@c", version="1", pid=None, state="offline",
                           last_seen=now - timedelta(days=3)))  # fmt: skip
        session.add(Worker(hostname="lost@d", version="1", pid=None,
                           last_seen=now - timedelta(days=2)))  # fmt: skip
    env = clean_env(DTF_HOME=str(home))

    listed = run_dtf("workers", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "up@a" in listed.stdout and "left@b" in listed.stdout
    assert "old@c" not in listed.stdout and "lost@d" not in listed.stdout
    assert listed.stdout.strip().endswith(
        "(2 worker(s) offline or lost for over 24 h not shown; --all lists them)"
    )
    as_json = json.loads(run_dtf("workers", "--json", env=env, cwd=tmp_path).stdout)
    assert {row["hostname"] for row in as_json} == {"up@a", "left@b"}

    everything = run_dtf("workers", "--all", env=env, cwd=tmp_path)
    assert all(h in everything.stdout for h in ("up@a", "left@b", "old@c", "lost@d"))
    assert "not shown" not in everything.stdout
    assert {r["hostname"] for r in json.loads(
        run_dtf("workers", "--all", "--json", env=env, cwd=tmp_path).stdout
    )} == {"up@a", "left@b", "old@c", "lost@d"}  # fmt: skip
