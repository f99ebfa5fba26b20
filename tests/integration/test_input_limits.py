"""Task files past dtf's limits are refused by ``dtf run`` with one line and exit 2, on
PostgreSQL as on SQLite; what is just within them is stored as written."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from tests.integration.test_bad_input_and_faults import assert_one_line_error
from tests.support.processes import clean_env, run_dtf
from tests.unit.test_spec_limits import BILLION_LAUGHS

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    return tmp_path


def write_run(project, **fields) -> str:
    (project / "run.json").write_text(json.dumps({"tasks": [{"type": "test"}], **fields}))
    return "run.json"


def test_a_run_name_longer_than_its_column_is_refused_on_postgresql(project, cluster_env):
    proc = run_dtf("run", "--task-file", write_run(project, name="n" * 201), env=cluster_env,
                   cwd=project)  # fmt: skip
    assert_one_line_error(proc, 2, "run.json: name: is 201 characters long", "200 allowed")


def test_a_task_name_longer_than_its_column_is_refused_on_postgresql(project, cluster_env):
    tasks = [{"type": "test", "name": "t" * 300}]
    proc = run_dtf("run", "--task-file", write_run(project, tasks=tasks), env=cluster_env,
                   cwd=project)  # fmt: skip
    assert_one_line_error(proc, 2, "tasks[0].name: is 300 characters long")


def test_names_as_long_as_their_columns_are_stored_on_postgresql(
    project, cluster_env, start_worker
):
    start_worker(cluster_env, queues="cpu")
    name, task_name = "n" * 200, "t" * 200
    task_file = write_run(project, name=name, tasks=[{"type": "test", "name": task_name}])
    proc = run_dtf("run", "--task-file", task_file, env=cluster_env, cwd=project)
    assert proc.returncode == 0, proc.stderr
    engine = create_engine(cluster_env["DTF_DATABASE_URL"])
    with engine.connect() as connection:
        assert connection.scalar(text("select name from runs")) == name
        assert connection.scalar(text("select name from run_tasks")) == task_name
    engine.dispose()


def test_a_billion_laughs_task_file_is_refused(project, cluster_env):
    (project / "run.yaml").write_text(BILLION_LAUGHS)
    proc = run_dtf("run", "--task-file", "run.yaml", env=cluster_env, cwd=project)
    assert_one_line_error(proc, 2, "run.yaml: holds more than 100000 values", "YAML aliases")


def test_a_password_in_the_query_of_a_database_url_is_never_printed(project):
    env = clean_env(DTF_DATABASE_URL="postgresql+psycopg2://dtf@127.0.0.1:1/dtf?password=s3cret")
    proc = run_dtf("status", env=env, cwd=project)
    assert_one_line_error(proc, 3, "cannot reach the database", "password=***")
    assert "s3cret" not in proc.stdout + proc.stderr
