"""Where dtf run keeps workers warm, the next dtf command runs in a warm command server."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dtf import command_server
from dtf.local_workers import process_alive
from tests.support.processes import clean_env, one_test_project, run_dtf

pytestmark = pytest.mark.integration

SLOW_TEST = "import time\n\ndef test_slow():\n    time.sleep(5)\n"


@pytest.fixture
def project(tmp_path):
    """A one-test suite whose first run has left its workers and command server warm."""
    suite, home = one_test_project(tmp_path)
    env = clean_env(DTF_HOME=str(home), DTF_LOCAL_WORKERS_IDLE="120")
    first = run_dtf("run", ".", "--workers", "1", env=env, cwd=suite)
    assert first.returncode == 0, first.stderr
    wait_until_serving(home, env)
    yield suite, home, env
    run_dtf("stop-workers", env=env, cwd=suite)


def server_state(home: Path, env: dict[str, str]) -> Path:
    return command_server.state_file(home, command_server.server_key(env))


def wait_until_serving(home: Path, env: dict[str, str]) -> None:
    socket = command_server.socket_path(home, command_server.server_key(env))
    deadline = time.monotonic() + 30
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert socket.exists(), "the command server never listened"


def served(home: Path) -> list[tuple[str, int]]:
    """(command, pid of the child that ran it) for each command the server ran."""
    log = home / "logs" / "command-server.log"
    text = log.read_text() if log.exists() else ""
    return [(name, int(pid)) for name, pid in re.findall(r"dtf (\S+) in .*: pid (\d+)", text)]


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not process_alive(pid)


def launch(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dtf", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_second_run(home: Path) -> None:
    """Until a batch of the run after the fixture's has started on a worker."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite3.connect(home / "dtf.sqlite") as db:
            started = db.execute(
                "select count(distinct batches.run_id) from attempts "
                "join batches on attempts.batch_id = batches.id"
            ).fetchone()[0]
        if started == 2:
            return
        time.sleep(0.1)
    raise AssertionError("the second run started no batch")


def test_the_next_run_is_served_by_the_command_server_with_the_same_output(project):
    suite, home, env = project
    assert served(home) == []  # the first run started it and ran in its own process

    second = run_dtf("run", ".", "--workers", "1", env=env, cwd=suite)

    assert second.returncode == 0, second.stderr
    assert "1 passed" in second.stdout + second.stderr
    [(command, pid)] = served(home)
    assert command == "run" and pid != os.getpid()
    status = json.loads(run_dtf("status", "--json", env=env, cwd=suite).stdout)
    assert status["counts"] == {"passed": 1}
    assert [name for name, _ in served(home)] == ["run", "status"]


def test_exit_codes_and_error_lines_come_back_from_the_server(project):
    suite, home, env = project
    (suite / "test_two.py").write_text("def test_two():\n    assert False\n")

    failed = run_dtf("run", ".", "--workers", "1", env=env, cwd=suite)
    missing = run_dtf("run", "no_such_dir", "--workers", "1", env=env, cwd=suite)

    assert failed.returncode == 1, failed.stderr
    assert missing.returncode == 2
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("dtf: error:") and "no_such_dir" in line
    assert [name for name, _ in served(home)] == ["run", "run"]


def test_another_environment_runs_the_command_itself(project):
    suite, home, env = project

    other = run_dtf("status", env={**env, "SOME_SETTING": "1"}, cwd=suite)
    itself = run_dtf("status", env={**env, "DTF_COMMAND_SERVER": "0"}, cwd=suite)

    assert other.returncode == 0 and itself.returncode == 0
    assert served(home) == []


def test_ctrl_c_at_the_launcher_interrupts_the_command_it_forwarded(project):
    suite, home, env = project
    (suite / "test_one.py").write_text(SLOW_TEST)

    launcher = launch("run", ".", "--workers", "1", env=env, cwd=suite)
    wait_for_second_run(home)
    launcher.send_signal(signal.SIGINT)
    _, stderr = launcher.communicate(timeout=60)

    assert launcher.returncode == 130, stderr
    assert "dtf: cancelling run" in stderr  # the served dtf run got the Ctrl-C
    [(_, pid)] = served(home)
    assert gone(pid, within=5)


def test_a_killed_launcher_takes_its_command_with_it(project):
    suite, home, env = project
    (suite / "test_one.py").write_text(SLOW_TEST)

    launcher = launch("run", ".", "--workers", "1", env=env, cwd=suite)
    wait_for_second_run(home)
    launcher.kill()
    launcher.wait()

    [(_, pid)] = served(home)
    assert gone(pid, within=10)


def test_stop_workers_stops_the_server_and_a_dead_server_is_passed_over(project):
    suite, home, env = project
    state = server_state(home, env)
    pid = json.loads(state.read_text())["pid"]

    assert run_dtf("stop-workers", env=env, cwd=suite).returncode == 0
    assert gone(pid, within=10)
    assert not state.exists()
    assert not command_server.socket_path(home, command_server.server_key(env)).exists()

    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"pid": pid}))  # as a killed server leaves it
    status = run_dtf("status", env=env, cwd=suite)
    assert status.returncode == 0, status.stderr
    assert served(home) == []


def test_stop_workers_says_it_stopped_a_server_whose_workers_had_gone(project):
    suite, home, env = project
    pid = json.loads(server_state(home, env).read_text())["pid"]
    for state in (home / "local-workers").glob("*.json"):  # as workers idling out leave
        os.killpg(json.loads(state.read_text())["pid"], signal.SIGKILL)
        state.unlink()

    stopped = run_dtf("stop-workers", env=env, cwd=suite)
    assert stopped.stdout.strip() == "dtf: stopped 1 command server(s)", stopped.stdout
    assert gone(pid, within=10)
    again = run_dtf("stop-workers", env=env, cwd=suite)
    assert again.stdout.strip() == "dtf: none running (no warm local worker, no command server)"


def test_the_server_leaves_on_its_own_after_the_idle_time(tmp_path):
    suite, home = one_test_project(tmp_path)
    env = clean_env(DTF_HOME=str(home), DTF_LOCAL_WORKERS_IDLE="2")

    assert run_dtf("run", ".", "--workers", "1", env=env, cwd=suite).returncode == 0
    state = server_state(home, env)
    pid = json.loads(state.read_text())["pid"]

    assert gone(pid, within=30)
    assert not state.exists()


def test_the_launcher_forwards_nothing_it_should_run_itself(project, monkeypatch):
    suite, home, env = project
    monkeypatch.chdir(suite)

    assert command_server.forward(["status"], env={**env, "DTF_COMMAND_SERVER": "0"}) is None
    assert command_server.forward(["stop-workers"], env=env) is None
    assert command_server.forward(["status"], env={**env, "DTF_HOME": str(home / "x")}) is None


def test_the_server_preloads_the_heavy_imports_but_never_the_cli():
    probe = (
        "import json, sys; from dtf import command_server; command_server.preload(); "
        "print(json.dumps([m for m in ('celery', 'dtf.cli', 'pydantic', 'sqlalchemy') "
        "if m in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert json.loads(proc.stdout) == ["celery", "pydantic", "sqlalchemy"], proc.stderr
