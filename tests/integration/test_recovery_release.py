"""`dtf recovery release HOST`: confirms only a release that happened."""

from __future__ import annotations

import pytest

from dtf.db.models import Worker, utcnow
from dtf.db.session import session_scope
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration


def test_release_confirms_only_a_worker_that_was_quarantined(embedded_home, tmp_path):
    home, url = embedded_home
    with session_scope(url) as session:
        session.add(Worker(hostname="ok@a", version="1", pid=None))
        session.add(Worker(hostname="bad@b", version="1", pid=None, quarantined_at=utcnow(),
                           quarantine_reason="kept crashing"))  # fmt: skip
    env = clean_env(DTF_HOME=str(home))

    healthy = run_dtf("recovery", "release", "ok@a", env=env, cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.strip() == "ok@a is not quarantined: nothing to release"

    released = run_dtf("recovery", "release", "bad@b", env=env, cwd=tmp_path)
    assert released.returncode == 0, released.stderr
    assert released.stdout.strip() == "bad@b released from quarantine"
    with session_scope(url) as session:
        assert session.get(Worker, "bad@b").quarantined_at is None

    unknown = run_dtf("recovery", "release", "nobody@c", env=env, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no worker named 'nobody@c'" in unknown.stderr
