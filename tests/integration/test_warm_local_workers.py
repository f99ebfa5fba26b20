"""dtf run keeps its local workers warm for the next run of the same set-up, then lets them go."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, select

from dtf.db.models import Attempt
from dtf.local_workers import process_alive
from tests.support.processes import clean_env, one_test_project, run_dtf

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path):
    suite, home = one_test_project(tmp_path)
    yield suite, home
    run_dtf("stop-workers", env=clean_env(DTF_HOME=str(home)), cwd=suite)


def gone(pid: int, within: float) -> bool:
    """Whether the process ``pid`` has exited, waiting up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not process_alive(pid)


def warm_state(home) -> list[dict]:
    return [json.loads(p.read_text()) for p in (home / "local-workers").glob("*.json")]


def workers_of_runs(home) -> list[str]:
    engine = create_engine(f"sqlite:///{home / 'dtf.sqlite'}")
    with engine.connect() as db:
        workers = list(db.scalars(select(Attempt.worker).order_by(Attempt.started_at)))
    engine.dispose()
    return workers


def batch_ids(home) -> list[str]:
    engine = create_engine(f"sqlite:///{home / 'dtf.sqlite'}")
    with engine.connect() as db:
        ids = list(db.scalars(select(Attempt.batch_id)))
    engine.dispose()
    return ids


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
    assert gone(state["pid"], within=10)


def test_a_run_refused_while_planning_leaves_the_workers_warm(project):
    suite, home = project
    env = clean_env(DTF_HOME=str(home), DTF_LOCAL_WORKERS_IDLE="120")
    assert run_dtf("run", ".", "--workers", "1", env=env, cwd=suite).returncode == 0
    [state] = warm_state(home)

    typo = run_dtf("run", "no/such/dir", "--workers", "1", env=env, cwd=suite)

    assert typo.returncode == 2, typo.stderr
    assert warm_state(home) == [state] and process_alive(state["pid"])


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
    assert gone(old["pid"], within=10)


def test_warm_workers_leave_on_their_own_after_the_idle_time(project):
    suite, home = project
    env = clean_env(DTF_HOME=str(home), DTF_LOCAL_WORKERS_IDLE="2")

    assert run_dtf("run", ".", "--workers", "1", env=env, cwd=suite).returncode == 0
    [state] = warm_state(home)

    assert gone(state["pid"], within=30)
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


def test_warm_workers_of_one_project_never_take_another_projects_batches(tmp_path, redis_url):
    """Two projects on one Redis broker: each run is served by its own local workers only."""
    projects = {}
    for name in ("a", "b"):
        suite = tmp_path / name
        suite.mkdir()
        for module in range(6):
            (suite / f"test_{module}.py").write_text("def test_one():\n    pass\n")
        projects[name] = (suite, tmp_path / f"home-{name}")
    env_a = clean_env(
        DTF_HOME=str(projects["a"][1]), DTF_BROKER_URL=redis_url, DTF_LOCAL_WORKERS_IDLE="120"
    )
    env_b = clean_env(DTF_HOME=str(projects["b"][1]), DTF_BROKER_URL=redis_url)
    try:
        first = run_dtf("run", ".", "--workers", "1", env=env_a, cwd=projects["a"][0])
        assert first.returncode == 0, first.stderr
        [warm_a] = warm_state(projects["a"][1])

        other = run_dtf(
            "run", ".", "--workers", "1", "--batches", "6", env=env_b, cwd=projects["b"][0]
        )

        assert other.returncode == 0, other.stderr
        status = json.loads(run_dtf("status", "--json", env=env_b, cwd=projects["b"][0]).stdout)
        assert status["counts"] == {"passed": 6}
        workers_b = set(workers_of_runs(projects["b"][1]))
        assert len(workers_b) == 1 and warm_a["hostname"] not in workers_b
        log_a = Path(warm_a["log_file"]).read_text()
        assert not [batch for batch in batch_ids(projects["b"][1]) if batch in log_a]
    finally:
        run_dtf("stop-workers", env=env_a, cwd=projects["a"][0])
