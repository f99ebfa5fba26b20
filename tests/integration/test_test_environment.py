"""A test that prints its environment puts no secret of dtf's into the stored results or
the reports (issue 16, item 2): a real worker on Redis and PostgreSQL runs it through
``dtf run``, with the database URL holding a password and CI tokens planted in the
worker's environment; DTF_TEST_ENV_PASS lets one setting through, and what a command
task's ``env`` sets reaches its command."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import MetaData, create_engine, select

from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration

PRINTS_ITS_ENV = """\
import json, os

def test_prints_its_environment():
    print(json.dumps(dict(os.environ), sort_keys=True))
    raise AssertionError("environment: " + json.dumps(dict(os.environ), sort_keys=True))
"""
TOKENS = {
    "GITHUB_TOKEN": "ghp_planted-github-token",
    "GITLAB_TOKEN": "glpat-planted-gitlab-token",
    "CI_JOB_TOKEN": "planted-job-token",
    "SYSTEM_ACCESSTOKEN": "planted-azure-token",
}
DB_PASSWORD = "planted-db-password"


def stored_text(database_url: str) -> str:
    """Every row of every table of dtf's database, as text."""
    engine = create_engine(database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as db:
        values = [
            str(value)
            for table in meta.sorted_tables
            for row in db.execute(select(table))
            for value in row
        ]
    engine.dispose()
    return "\n".join(values)


def test_a_test_printing_its_environment_leaks_no_secret(tmp_path, cluster_env, start_worker):
    suite, out = tmp_path / "suite", tmp_path / "out"
    suite.mkdir()
    out.mkdir()
    (suite / "test_env.py").write_text(PRINTS_ITS_ENV)
    command = {
        "type": "command",
        "name": "env",
        "command": "env",
        "env": {"FROM_THE_TASK_FILE": "explicit", "DTF_FROM_THE_TASK_FILE": "explicit"},
    }
    task_file = {"tasks": [{"type": "test", "paths": ["test_env.py"]}, command]}  # fmt: skip
    (suite / "run.json").write_text(json.dumps(task_file))
    # With trust authentication PostgreSQL never asks for the password: it is only planted.
    database_url = cluster_env["DTF_DATABASE_URL"].replace(
        "//postgres@", f"//postgres:{DB_PASSWORD}@"
    )
    env = {
        **cluster_env,
        **TOKENS,
        "DTF_DATABASE_URL": database_url,
        "DTF_SUITE_SETTING": "let-through",
        "DTF_TEST_ENV_PASS": "DTF_SUITE_SETTING",
        "SUITE_PLAIN_VARIABLE": "plain",
    }
    secrets = [DB_PASSWORD, database_url, env["DTF_BROKER_URL"], *TOKENS.values()]
    start_worker(env, queues="cpu")

    reports = [f"{fmt}={out / fmt}" for fmt in ("junit", "json", "html")]
    proc = run_dtf("run", "--task-file", "run.json", *(a for r in reports for a in ("--report", r)),
                   env=env, cwd=suite)  # fmt: skip

    assert proc.returncode == 1, proc.stdout + proc.stderr  # the test fails on purpose
    stored = stored_text(database_url)
    assert "environment: " in stored and "FROM_THE_TASK_FILE=explicit" in stored
    for seen in [stored, *((out / fmt).read_text() for fmt in ("junit", "json", "html"))]:
        assert [secret for secret in secrets if secret in seen] == []
        assert "DTF_BROKER_URL" not in seen and "DTF_DATABASE_URL" not in seen
    # Let through: what DTF_TEST_ENV_PASS names, everything not dtf's, what a task sets.
    junit = (out / "junit").read_text()
    assert '"DTF_SUITE_SETTING": "let-through"' in junit
    assert '"SUITE_PLAIN_VARIABLE": "plain"' in junit
    assert "DTF_SUITE_SETTING=let-through" in stored  # the command's output
    assert "DTF_FROM_THE_TASK_FILE=explicit" in stored
