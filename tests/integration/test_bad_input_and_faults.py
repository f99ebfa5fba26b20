"""Every bad input and missing service: one line naming the problem, an exit code, no traceback."""

from __future__ import annotations

import json

import pytest

from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration


def assert_one_line_error(proc, exit_code: int, *fragments: str) -> None:
    assert proc.returncode == exit_code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dtf: error: ")
    assert "Traceback" not in proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    return tmp_path


def test_malformed_task_file(project):
    (project / "run.json").write_text('{"tasks": [{"type": "test", "paths": ["."],}]}')
    proc = run_dtf("submit", "--task-file", "run.json", env=clean_env(), cwd=project)
    assert_one_line_error(proc, 2, "run.json", "not valid JSON", "line 1")


def test_task_file_with_a_misspelt_field(project):
    task = {"type": "test", "paths": ["."], "requirements": {"hardwre": "cpu"}}
    (project / "run.json").write_text(json.dumps(task))
    proc = run_dtf("run", "--task-file", "run.json", env=clean_env(), cwd=project)
    assert_one_line_error(proc, 2, "requirements", "'hardwre'", "did you mean 'hardware'")


def test_unknown_hardware(project):
    proc = run_dtf("run", ".", "--hardware", "gpu", env=clean_env(), cwd=project)
    assert_one_line_error(proc, 2, "unknown hardware 'gpu'")


def test_missing_path(project):
    proc = run_dtf("run", "no/such/dir", "--workers", "1", env=clean_env(), cwd=project)
    assert_one_line_error(proc, 2, "no/such/dir")
    assert not (project / ".dtf" / "broker" / "queue").exists() or not any(
        (project / ".dtf" / "broker" / "queue").iterdir()
    )


def test_nothing_selected(project):
    proc = run_dtf("run", ".", "-k", "nothing_matches", env=clean_env(), cwd=project)
    assert_one_line_error(proc, 2, "no tests collected")


def test_a_legacy_benchmark_task_is_planned_and_needs_its_hardware(project):
    task = {
        "type": "benchmark", "priority": 1,
        "config": {"model": "bert-base-uncased", "batch_sizes": [1, 2, 4, 8, 16],
                   "precision": "fp16", "iterations": 100},
        "requirements": {"hardware": ["cuda"], "min_memory_gb": 8, "min_cuda_compute": 7.5},
        "timeout_seconds": 1800,
        "retry_policy": {"max_retries": 3, "retry_delay_seconds": 60},
    }  # fmt: skip
    (project / "bench.json").write_text(json.dumps(task))
    proc = run_dtf("submit", "--task-file", "bench.json", env=clean_env(), cwd=project)
    assert_one_line_error(
        proc, 3, "benchmark of bert-base-uncased on cuda", "no live worker serves 'cuda'"
    )


def test_broker_that_is_down(project):
    env = clean_env(DTF_BROKER_URL="redis://127.0.0.1:1/0")
    proc = run_dtf("submit", ".", env=env, cwd=project)
    assert_one_line_error(proc, 3, "cannot reach the broker at redis://127.0.0.1:1/0")


def test_database_that_is_down(project):
    env = clean_env(DTF_DATABASE_URL="postgresql+psycopg2://dtf:secret@127.0.0.1:1/dtf")
    proc = run_dtf("run", ".", env=env, cwd=project)
    assert_one_line_error(proc, 3, "cannot reach the database", "dtf:***@127.0.0.1:1")
    assert "secret" not in proc.stderr


def test_database_without_schema(project, postgres_url):
    env = clean_env(DTF_DATABASE_URL=postgres_url)
    proc = run_dtf("status", env=env, cwd=project)
    assert_one_line_error(proc, 2, "dtf init-db")


def test_no_worker_on_the_queue(project, redis_url, postgres_url):
    env = clean_env(DTF_BROKER_URL=redis_url, DTF_DATABASE_URL=postgres_url)
    assert run_dtf("init-db", env=env, cwd=project).returncode == 0
    proc = run_dtf("run", ".", "--hardware", "rocm", env=env, cwd=project)
    assert_one_line_error(proc, 3, "no live worker serves 'rocm'", "-Q rocm")


def test_unknown_run(project):
    run_dtf("run", ".", "--workers", "1", env=clean_env(), cwd=project)
    proc = run_dtf("status", "nope", env=clean_env(), cwd=project)
    assert_one_line_error(proc, 2, "no run with id 'nope'")


def test_unknown_option_is_a_usage_error(project):
    proc = run_dtf("run", "--frobnicate", env=clean_env(), cwd=project)
    assert_one_line_error(proc, 2, "--frobnicate")


def test_a_working_directory_that_was_deleted(tmp_path):
    import subprocess
    import sys

    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.run(
        ["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m dtf status'],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert_one_line_error(proc, 2, "current directory no longer exists")


def test_a_database_whose_driver_is_not_installed(project):
    env = clean_env(DTF_DATABASE_URL="mysql://dtf:secret@127.0.0.1:3306/dtf")
    proc = run_dtf("status", env=env, cwd=project)
    assert_one_line_error(proc, 3, "needs the Python package 'MySQLdb'", "mysql://dtf:***@")
