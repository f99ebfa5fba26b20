"""Tests and command tasks run without dtf's settings and secrets in their environment
(issue 16, item 2): every DTF_* variable and the CI tokens dtf's integrations read are
withheld, unless DTF_TEST_ENV_PASS names them; what a task sets explicitly gets through.
Against real pytest children (forked and spawned) and real commands."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dtf.executor import warm
from dtf.executor.child_env import CI_TOKENS, child_env
from dtf.executor.collect import collect
from dtf.executor.command_runner import run_command
from dtf.executor.pytest_runner import run_pytest_batch
from dtf.executor.records import TestRecord

WORKER_ENV = {
    "DTF_DATABASE_URL": "postgresql://dtf:db-secret@db.example/dtf",
    "DTF_BROKER_URL": "redis://:broker-secret@redis.example:6379/0",
    "DTF_SLACK_WEBHOOK_URL": "https://hooks.example/slack-secret",
    "GITHUB_TOKEN": "ghp_fake-github-token",
    "GITLAB_TOKEN": "glpat-fake-gitlab-token",
    "CI_JOB_TOKEN": "fake-job-token",
    "SYSTEM_ACCESSTOKEN": "fake-azure-token",
    "DTF_SUITE_OPTION": "let-through",
    "SUITE_PLAIN_VARIABLE": "plain",
}
SECRETS = (
    "db-secret", "broker-secret", "slack-secret", "fake-github-token", "fake-gitlab-token",
    "fake-job-token", "fake-azure-token",
)  # fmt: skip

#: A test that records what it sees: os.environ, and a process it starts (the C environ).
PRINTS_ITS_ENV = """
import json, os, subprocess, sys

def test_prints_its_env():
    seen = {
        "python": dict(os.environ),
        "process": subprocess.run(["env"], capture_output=True, text=True).stdout,
    }
    print(json.dumps(seen))
    with open(os.environ["ENV_PROBE_OUT"], "w") as out:
        json.dump(seen, out)
"""


def test_dtf_settings_and_ci_tokens_are_withheld_and_the_rest_kept() -> None:
    env = child_env({**WORKER_ENV, "PATH": "/usr/bin", "HOME": "/home/w"})

    assert env == {"SUITE_PLAIN_VARIABLE": "plain", "PATH": "/usr/bin", "HOME": "/home/w"}
    assert {"GITHUB_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN", "SYSTEM_ACCESSTOKEN"} == CI_TOKENS


def test_dtf_test_env_pass_lets_the_named_variables_through() -> None:
    worker = {**WORKER_ENV, "DTF_TEST_ENV_PASS": " DTF_SUITE_OPTION, GITHUB_TOKEN ,,"}

    env = child_env(worker)

    assert env["DTF_SUITE_OPTION"] == "let-through"
    assert env["GITHUB_TOKEN"] == "ghp_fake-github-token"
    assert "DTF_DATABASE_URL" not in env and "DTF_TEST_ENV_PASS" not in env


def test_what_a_task_sets_explicitly_gets_through_even_with_dtfs_prefix() -> None:
    env = child_env(WORKER_ENV, {"DTF_SUITE_OPTION": "from-the-task", "OWN": "1"})

    assert (env["DTF_SUITE_OPTION"], env["OWN"]) == ("from-the-task", "1")
    assert "DTF_BROKER_URL" not in env


def test_the_metrics_folder_dtf_set_for_the_worker_is_withheld_but_a_suites_own_kept() -> None:
    folder = "/tmp/dtf-metrics-1"
    worker = {"DTF_METRICS_DIR": folder, "PROMETHEUS_MULTIPROC_DIR": folder}
    own = {"PROMETHEUS_MULTIPROC_DIR": "/srv/suite-metrics"}

    assert child_env(worker) == {}
    assert child_env(own) == own


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment as a worker's: dtf's settings and CI tokens set."""
    for name, value in WORKER_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DTF_TEST_ENV_PASS", "DTF_SUITE_OPTION")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_test_printing_its_environment_sees_no_secret(
    tmp_path: Path, method: str, worker_env: None
) -> None:
    if method == "fork" and (reason := warm.fork_unsafe_reason()):
        pytest.skip(f"cannot fork warm children here: {reason}")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("")
    (suite / "test_env.py").write_text(textwrap.dedent(PRINTS_ITS_ENV))
    probe = tmp_path / "seen.json"
    records: list[TestRecord] = []

    outcome = run_pytest_batch(
        ["test_env.py::test_prints_its_env"],
        suite,
        test_timeout=60,
        on_record=records.append,
        start_method=method,
        env={"ENV_PROBE_OUT": str(probe), "DTF_SET_BY_THE_TASK": "explicit"},
    )

    assert outcome.start_methods == [method]
    assert [r.outcome for r in records] == ["passed"]
    seen = json.loads(probe.read_text())
    for text in (json.dumps(seen["python"]), seen["process"], records[0].stdout or ""):
        assert not [secret for secret in SECRETS if secret in text]
        assert "DTF_TEST_ENV_PASS" not in text
    assert seen["python"]["DTF_SUITE_OPTION"] == "let-through"
    assert seen["python"]["SUITE_PLAIN_VARIABLE"] == "plain"
    assert seen["python"]["DTF_SET_BY_THE_TASK"] == "explicit"
    assert "DTF_SUITE_OPTION=let-through" in seen["process"]
    assert "DTF_SET_BY_THE_TASK=explicit" in seen["process"]


def test_a_command_sees_no_secret_but_its_own_env(tmp_path: Path, worker_env: None) -> None:
    result = run_command("env", cwd=str(tmp_path), env={"FROM_TASK": "yes"}, timeout=60)

    assert result.exit_code == 0
    assert not [secret for secret in SECRETS if secret in result.output]
    lines = set(result.output.splitlines())
    assert {"FROM_TASK=yes", "DTF_SUITE_OPTION=let-through", "SUITE_PLAIN_VARIABLE=plain"} <= lines


#: Tests named after the variables of dtf's that the collection sees.
PARAMETRIZED_BY_ENV = """
import os, pytest

SEEN = sorted(n for n in os.environ if n.startswith("DTF_") or n.endswith("TOKEN"))

@pytest.mark.parametrize("name", SEEN)
def test_sees(name):
    pass
"""


def test_the_collection_sees_what_the_tests_see(tmp_path: Path, worker_env: None) -> None:
    (tmp_path / "pytest.ini").write_text("")
    (tmp_path / "test_params.py").write_text(textwrap.dedent(PARAMETRIZED_BY_ENV))

    collection = collect([], tmp_path)

    assert [item.nodeid for item in collection.items] == [
        "test_params.py::test_sees[DTF_SUITE_OPTION]"
    ]
