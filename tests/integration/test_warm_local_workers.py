"""dtf run keeps its local workers warm for the next run of the same set-up, then lets them go."""

from __future__ import annotations

import json
import time

import psutil
import pytest
from sqlalchemy import create_engine, select

from dtf.db.models import Attempt
from dtf.local_workers import process_alive
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_one.py").write_text("def test_one():\n    pass\n")
    home = tmp_path / "home"
    yield suite, home
    run_dtf("stop-workers", env=clean_env(DTF_HOME=str(home)), cwd=suite)


def warm_state(home) -> list[dict]:
    return [json.loads(p.read_text()) for p in (home / "local-workers").glob("*.json")]


def workers_of_runs(home) -> list[str]:
    engine = create_engine(f"sqlite:///{home / 'dtf.sqlite'}")
    with engine.connect() as db:
        workers = list(db.scalars(select(Attempt.worker).order_by(Attempt.started_at)))
    engine.dispose()
    return workers


def test_the_second_run_takes_over_the_workers_the_first_left_warm(project):
    suite, home = project
    env = clean_env(DTF_HOME=str(home), DTF_LOCAL_WORKERS_IDLE="120")

    first = run_dtf("run", ".", "--workers", "1", env=env, cwd=suite)
    [state] = warm_state(home)
    second = run_dtf("run", ".", "--workers", "1", env=env, cwd=suite)

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert process_alive(state["pid"])
    first_worker, second_worker = workers_of_runs(home)
    assert first_worker == second_worker == state["hostname"]

    stopped = run_dtf("stop-workers", env=env, cwd=suite)
    assert "stopped 1" in stopped.stdout
    assert warm_state(home) == []
    deadline = time.monotonic() + 10
    while process_alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive(state["pid"])


def test_another_environment_gets_new_workers_and_the_old_ones_stop(project):
    suite, home = project
    env = clean_env(DTF_HOME=str(home), DTF_LOCAL_WORKERS_IDLE="120")

    assert run_dtf("run", ".", "--workers", "1", env=env, cwd=suite).returncode == 0
    [old] = warm_state(home)
    changed = run_dtf("run", ".", "--workers", "1", env={**env, "SOME_SETTING": "2"}, cwd=suite)

    assert changed.returncode == 0, changed.stderr
    [new] = warm_state(home)
    assert new["pid"] != old["pid"]
    assert workers_of_runs(home)[-1] == new["hostname"]
    deadline = time.monotonic() + 10
    while process_alive(old["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive(old["pid"])


def test_warm_workers_leave_on_their_own_after_the_idle_time(project):
    suite, home = project
    env = clean_env(DTF_HOME=str(home), DTF_LOCAL_WORKERS_IDLE="2")

    assert run_dtf("run", ".", "--workers", "1", env=env, cwd=suite).returncode == 0
    [state] = warm_state(home)

    deadline = time.monotonic() + 30
    while process_alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not process_alive(state["pid"])
    assert warm_state(home) == []


def test_in_ci_or_with_idle_zero_the_workers_stop_with_the_run(project):
    suite, home = project
    env = clean_env(DTF_HOME=str(home))
    env.pop("DTF_LOCAL_WORKERS_IDLE")

    ci = run_dtf("run", ".", "--workers", "1", env={**env, "CI": "true"}, cwd=suite)

    assert ci.returncode == 0, ci.stderr
    assert warm_state(home) == []
    assert not [
        proc
        for proc in psutil.process_iter(["cmdline", "environ"])
        if "celery" in " ".join(proc.info["cmdline"] or ())
        and (proc.info["environ"] or {}).get("DTF_HOME") == str(home)
    ]
