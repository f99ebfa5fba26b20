"""dtf submit + dtf wait on the embedded default: local workers take the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.processes import clean_env, one_test_project, run_dtf

pytestmark = pytest.mark.integration


@pytest.fixture
def warm_env(tmp_path: Path):
    suite, home = one_test_project(tmp_path)
    env = clean_env(DTF_HOME=str(home), DTF_LOCAL_WORKERS_IDLE="60")
    yield suite, env
    run_dtf("stop-workers", env=env, cwd=suite)


def workers_of(env: dict[str, str], cwd: Path, run_id: str) -> set[str]:
    report = json.loads(run_dtf("report", run_id, "--format", "json", env=env, cwd=cwd).stdout)
    return {result["worker"] for result in report["results"]}


def test_a_submitted_run_is_taken_by_local_workers_and_dtf_wait_sees_it_end(warm_env):
    suite, env = warm_env
    submit = run_dtf("submit", ".", env=env, cwd=suite)
    assert submit.returncode == 0, submit.stderr
    run_id = submit.stdout.strip().splitlines()[-1]
    waited = run_dtf("wait", run_id, env=env, cwd=suite)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert f"passed: 1 passed (run {run_id})" in waited.stdout


def test_the_warm_workers_a_dtf_run_left_take_a_submitted_run(warm_env):
    suite, env = warm_env
    first = run_dtf("run", ".", env=env, cwd=suite)
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.strip().splitlines()[-1].rsplit("(run ", 1)[1].rstrip(")")
    submit = run_dtf("submit", ".", env=env, cwd=suite)
    run_id = submit.stdout.strip().splitlines()[-1]
    assert run_dtf("wait", run_id, env=env, cwd=suite).returncode == 0
    assert workers_of(env, suite, run_id) == workers_of(env, suite, first_id)


def test_where_local_workers_would_not_outlive_it_submit_says_what_to_do(tmp_path):
    suite, home = one_test_project(tmp_path)
    env = clean_env(DTF_HOME=str(home))  # DTF_LOCAL_WORKERS_IDLE=0, as in CI
    proc = run_dtf("submit", ".", env=env, cwd=suite)
    assert proc.returncode == 3
    (line,) = proc.stderr.strip().splitlines()
    assert "no live worker" in line and "celery -A dtf worker" in line
