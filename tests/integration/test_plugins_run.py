"""Plugins during a real `dtf run` on the embedded default: which hook fires where, and a
plugin that raises is disabled and reported while the run passes."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections import Counter

import pytest

from tests.support.processes import REPO, clean_env, run_dtf

pytestmark = pytest.mark.integration

HOOK_LOGGER = """
    import json, os

    from dtf.plugins import hookimpl

    dtf_plugin_kind = "monitoring"


    def _log(hook, payload):
        line = json.dumps({"hook": hook, "pid": os.getpid(), "payload": payload}) + "\\n"
        with open(os.environ["HOOK_LOG"], "a") as file:
            file.write(line)


    def _recorder(name):
        # A module-level function named after the hook, as a plugin author writes it.
        argument = {
            "dtf_coordinator_started": "coordinator", "dtf_coordinator_stopped": "coordinator",
            "dtf_run_submitted": "run", "dtf_task_created": "task", "dtf_task_assigned": "task",
            "dtf_task_started": "task", "dtf_task_completed": "task",
            "dtf_test_finished": "result", "dtf_worker_registered": "worker",
        }[name]
        namespace = {}
        exec(f"def {name}({argument}): _log({name!r}, {argument})", {"_log": _log}, namespace)
        return hookimpl(namespace[name])


    for _name in ("dtf_coordinator_started", "dtf_coordinator_stopped", "dtf_run_submitted",
                  "dtf_task_created", "dtf_task_assigned", "dtf_task_started",
                  "dtf_task_completed", "dtf_test_finished", "dtf_worker_registered"):
        globals()[_name] = _recorder(_name)


    @hookimpl
    def dtf_run_finished(run, summary):
        _log("dtf_run_finished", {"run": run, "summary": summary})


    class Kinds:
        # An executor plugin (a pytest plugin for every batch), a reporter plugin (CSV).

        dtf_plugin_kind = "executor"

        @hookimpl
        def dtf_pytest_args(self, batch):
            return ["-p", "marker_plugin"]

        @hookimpl
        def dtf_report_formats(self):
            def csv(run):
                rows = sorted(f"{r['nodeid']},{r['outcome']}" for r in run["results"])
                return "nodeid,outcome\\n" + "\\n".join(rows) + "\\n"

            return {"csv": csv}


    class Raiser:
        dtf_plugin_kind = "notification"

        @hookimpl
        def dtf_test_finished(self, result):
            raise RuntimeError("raiser broke on " + result["nodeid"])

        @hookimpl
        def dtf_run_finished(self, run, summary):
            raise RuntimeError("raiser broke at the end")
"""


MARKER_PLUGIN = """
    import os


    def pytest_configure(config):
        with open(os.environ["PYTEST_MARKER"], "a") as file:
            file.write(f"{os.getpid()}\\n")
"""


def test_hooks_fire_in_coordinator_and_worker_and_a_raising_plugin_never_fails_the_run(
    tmp_path,
):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hook_logger.py").write_text(textwrap.dedent(HOOK_LOGGER))
    (plugins / "marker_plugin.py").write_text(textwrap.dedent(MARKER_PLUGIN))
    marker = tmp_path / "pytest-children.txt"
    suite = tmp_path / "suite"
    shutil.copytree(REPO / "examples" / "sample_suite", suite)
    log = tmp_path / "hooks.jsonl"
    env = clean_env(
        DTF_PLUGINS="hook_logger,hook_logger:Kinds,hook_logger:Raiser",
        HOOK_LOG=str(log),
        PYTEST_MARKER=str(marker),
        PYTHONPATH=str(plugins),
        # A GitLab job without a token: the context is stored, nothing is posted.
        GITLAB_CI="true",
        CI_COMMIT_SHA="c0ffee",
        CI_COMMIT_REF_NAME="main",
        CI_JOB_URL="https://gitlab.example/g/app/-/jobs/77",
        CI_MERGE_REQUEST_IID="5",
    )
    for name in ("DTF_CI", "GITHUB_ACTIONS", "JENKINS_URL", "TF_BUILD", "GITLAB_TOKEN"):
        env.pop(name, None)

    proc = run_dtf("run", ".", "--workers", "1", env=env, cwd=suite)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dtf: passed: 7 passed, 1 xfailed" in proc.stdout
    assert "plugin hook_logger:Raiser disabled for run" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr

    events = [json.loads(line) for line in log.read_text().splitlines()]
    hooks = Counter(e["hook"] for e in events)
    cli_pid = events[0]["pid"]
    assert events[0]["hook"] == "dtf_coordinator_started"
    assert events[-1]["hook"] == "dtf_coordinator_stopped"
    assert hooks["dtf_test_finished"] == 8
    assert hooks["dtf_task_created"] == hooks["dtf_task_assigned"] == hooks["dtf_task_started"]
    assert hooks["dtf_task_started"] == hooks["dtf_task_completed"] >= 1
    assert hooks["dtf_worker_registered"] == 1
    assert hooks["dtf_run_submitted"] == hooks["dtf_run_finished"] == 1
    # The coordinator fires run and scheduling hooks; the worker task and test hooks.
    for event in events:
        in_cli = event["hook"] in (
            "dtf_coordinator_started", "dtf_coordinator_stopped", "dtf_run_submitted",
            "dtf_run_finished", "dtf_task_created", "dtf_task_assigned",
        )  # fmt: skip
        assert (event["pid"] == cli_pid) == in_cli, event["hook"]

    finished = next(e["payload"] for e in events if e["hook"] == "dtf_run_finished")
    assert finished["summary"]["counts"] == {"passed": 7, "xfailed": 1}
    assert finished["summary"]["status"] == "passed"
    assert finished["run"]["ci"] == {
        "provider": "gitlab",
        "commit": "c0ffee",
        "branch": "main",
        "pull_request": "5",
        "build_url": "https://gitlab.example/g/app/-/jobs/77",
    }
    result = next(e["payload"] for e in events if e["hook"] == "dtf_test_finished")
    assert set(result) >= {"run_id", "batch_id", "nodeid", "outcome", "duration", "worker"}

    # The executor plugin's -p reached the pytest children of the batches.
    assert len(marker.read_text().splitlines()) >= hooks["dtf_task_started"]
    csv = run_dtf("report", "--format", "csv", env=env, cwd=suite)
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.startswith("nodeid,outcome\n")
    assert "test_arithmetic.py::" in csv.stdout and len(csv.stdout.splitlines()) == 9

    status = run_dtf("status", "--json", env=env, cwd=suite)
    data = json.loads(status.stdout)
    assert data["status"] == "passed"
    failures = {o["error"] for o in data["integrations"] if not o["ok"]}
    assert "dtf_run_finished raised RuntimeError: raiser broke at the end" in failures
    # The worker disabled it after its first test: one failure stored from there.
    assert sum(e.startswith("dtf_test_finished raised RuntimeError") for e in failures) == 1
    text = run_dtf("status", env=env, cwd=suite).stdout
    assert "CI gitlab: commit c0ffee, branch main, pull_request 5" in text
    assert "INTEGRATION hook_logger:Raiser: failed - dtf_run_finished raised" in text
