"""dtf cancel and Ctrl-C: a run stops everywhere, and what it produced stays."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

SLOW = """
import time
import pytest

@pytest.mark.parametrize("i", range(40))
def test_slow(i):
    time.sleep(1)
"""


def slow_suite(tmp_path: Path) -> Path:
    root = tmp_path / "suite"
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_slow.py").write_text(SLOW)
    return root


def start_dtf(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dtf", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def status(env: dict[str, str], cwd: Path, run_id: str | None = None) -> dict:
    proc = run_dtf("status", "--json", *([run_id] if run_id else []), env=env, cwd=cwd)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def wait_for_results(
    env: dict[str, str], cwd: Path, at_least: int, process: subprocess.Popen
) -> dict:
    """The latest run once it has stored ``at_least`` results, while ``process`` (the dtf
    command that waits for it) still runs."""
    while True:
        state = status(env, cwd)
        if state.get("finished", 0) >= at_least:
            return state
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"dtf ended (exit {process.returncode}) first:\n{out}{err}")
        time.sleep(0.3)


def test_dtf_cancel_stops_a_run_on_the_embedded_default(tmp_path):
    root = slow_suite(tmp_path)
    env = clean_env(DTF_HOME=str(tmp_path / "home"))
    run = start_dtf("run", "--workers", "2", env=env, cwd=root)
    before = wait_for_results(env, root, 2, run)
    cancel = run_dtf("cancel", before["run_id"], env=env, cwd=root)
    assert cancel.returncode == 0, cancel.stderr
    assert "cancel" in cancel.stdout
    out, err = run.communicate(timeout=120)
    assert run.returncode == 4, out + err
    after = status(env, root, before["run_id"])
    assert after["status"] == "cancelled"
    # What ran before the cancel stays; what did not run has no result.
    assert before["finished"] <= after["finished"] < after["total"] == 40
    assert after["counts"] == {"passed": after["finished"]}
    assert "cancelled with dtf cancel" in out


def test_ctrl_c_on_dtf_run_cancels_the_run_it_started(tmp_path):
    root = slow_suite(tmp_path)
    env = clean_env(DTF_HOME=str(tmp_path / "home"))
    run = start_dtf("run", "--workers", "1", env=env, cwd=root)
    before = wait_for_results(env, root, 1, run)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, out + err
    assert f"cancelling run {before['run_id']}" in err
    after = status(env, root, before["run_id"])
    assert after["status"] == "cancelled"
    assert after["finished"] < after["total"]


def test_ctrl_c_on_dtf_wait_only_stops_waiting_and_dtf_cancel_ends_the_run(
    tmp_path, cluster_env, start_worker
):
    root = slow_suite(tmp_path)
    start_worker(cluster_env, queues="cpu", concurrency=1, name="solo")
    submit = run_dtf("submit", ".", env=cluster_env, cwd=root)
    assert submit.returncode == 0, submit.stderr
    run_id = submit.stdout.strip().splitlines()[-1]
    waiting = start_dtf("wait", run_id, env=cluster_env, cwd=root)
    wait_for_results(cluster_env, root, 1, waiting)
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 130, out + err
    assert f"run {run_id} goes on" in err
    assert status(cluster_env, root, run_id)["status"] == "running"

    assert run_dtf("cancel", run_id, env=cluster_env, cwd=root).returncode == 0
    ended = run_dtf("wait", run_id, env=cluster_env, cwd=root)
    assert ended.returncode == 4, ended.stdout + ended.stderr
    after = status(cluster_env, root, run_id)
    assert after["status"] == "cancelled" and after["finished"] < after["total"]


def command_task(tmp_path: Path, command: str) -> Path:
    task_file = tmp_path / "run.json"
    task = {"type": "command", "name": "work", "command": command, "timeout": 600,
            "requirements": {"hardware": "cpu"}}  # fmt: skip
    task_file.write_text(json.dumps({"tasks": [task]}))
    return task_file


def command_of(env: dict[str, str], cwd: Path, run_id: str) -> dict:
    report = run_dtf("report", run_id, "--format", "json", env=env, cwd=cwd)
    assert report.returncode == 0, report.stderr
    return next(t for t in json.loads(report.stdout)["tasks"] if t["type"] == "command")


def test_dtf_cancel_kills_a_running_command_task(tmp_path, cluster_env, start_worker):
    task_file = command_task(tmp_path, "echo started; sleep 600")
    start_worker(cluster_env, queues="cpu", concurrency=1, name="solo")
    submit = run_dtf("submit", "--task-file", str(task_file), env=cluster_env, cwd=tmp_path)
    assert submit.returncode == 0, submit.stderr
    run_id = submit.stdout.strip().splitlines()[-1]
    while command_of(cluster_env, tmp_path, run_id)["status"] != "running":
        time.sleep(0.3)

    assert run_dtf("cancel", run_id, env=cluster_env, cwd=tmp_path).returncode == 0
    ended = run_dtf("wait", run_id, env=cluster_env, cwd=tmp_path)

    assert ended.returncode == 4, ended.stdout + ended.stderr
    command = command_of(cluster_env, tmp_path, run_id)
    assert command["status"] == "cancelled"
    assert command["output"].startswith("started")
    assert "its run was cancelled" in command["output"]


def test_a_replayed_command_message_does_not_run_the_command_again(
    tmp_path, cluster_env, start_worker
):
    from dtf.celery_app import create_app

    marker = tmp_path / "ran"
    task_file = command_task(tmp_path, f"echo once >> {marker}; echo done")
    start_worker(cluster_env, queues="cpu", concurrency=1, name="solo")
    ran = run_dtf("run", "--task-file", str(task_file), env=cluster_env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = re.search(r"\(run (\w+)\)", ran.stdout).group(1)
    first = command_of(cluster_env, tmp_path, run_id)

    # Whoever can write to the broker sends the command's message again.
    app = create_app()
    app.conf.update(broker_url=cluster_env["DTF_BROKER_URL"],
                    result_backend=cluster_env["DTF_BROKER_URL"])  # fmt: skip
    replay = app.send_task("dtf.execute_command", args=[first["id"]], queue="cpu")

    assert replay.get(timeout=120)["status"] == "done"
    assert marker.read_text() == "once\n"
    assert command_of(cluster_env, tmp_path, run_id) == first
