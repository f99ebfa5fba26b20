"""Processes a batch or a command leaves behind end with it (issue 16, item 3): those that
left the child's process group (its session is killed) and daemons that left both
(adopted by the subreaper and killed when the batch ends). Real processes throughout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dtf.executor.command_runner import run_command
from dtf.executor.pytest_runner import run_pytest_batch
from dtf.executor.records import TestRecord
from tests.support.processes import process_gone

#: Starts a daemon as a service would: fork, setsid, fork again, the middle one exits;
#: the daemon's stdio goes to /dev/null, it keeps an inherited fd open and runs ``sleep``.
#: Prints the daemon's pid.
DAEMONIZE = """
import os, sys
held = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
os.set_inheritable(held, True)
read, write = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.write(write, str(os.getpid()).encode())
        os.execvp("sleep", ["sleep", "3600"])
    os._exit(0)
os.close(write)
print(os.read(read, 64).decode())
"""

#: Runs DAEMONIZE inside ending_orphans, beside a child started before and a watched one.
SUBREAPER = """
import json, os, subprocess, sys
from dtf.executor import reaper

before = subprocess.Popen(["sleep", "3600"])
watched = subprocess.Popen(["sleep", "3600"])
try:
    with reaper.watching(watched.pid), reaper.ending_orphans():
        out = subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]],
                             capture_output=True, text=True, check=True).stdout
        daemon = int(out)
        print(json.dumps({"daemon": daemon}), flush=True)
        adopted = open(f"/proc/{daemon}/stat").read().rsplit(")", 1)[1].split()[1]
    gone = not os.path.exists(f"/proc/{daemon}")
    print(json.dumps({"parent": int(adopted), "me": os.getpid(), "gone": gone,
                      "before": before.poll() is None, "watched": watched.poll() is None}))
finally:
    before.kill()
    watched.kill()
"""


def kill_if_alive(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a subreaper is Linux's")
def test_a_daemon_adopted_during_a_batch_is_killed_and_reaped_when_it_ends(tmp_path: Path):
    # In a process of its own: becoming a subreaper lasts as long as the process.
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SUBREAPER), textwrap.dedent(DAEMONIZE),
         str(tmp_path / "held")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    try:
        assert proc.returncode == 0, proc.stderr
        seen = lines[1]
        assert seen["parent"] == seen["me"]  # adopted, not left to init
        assert seen["gone"]  # killed and reaped: no zombie left either
        assert seen["before"] and seen["watched"]  # what the batch did not leave: untouched
    finally:
        if lines:
            kill_if_alive(lines[0]["daemon"])


LEAVES_A_GROUP = """
import os, subprocess, sys

def test_starts_a_process_in_a_group_of_its_own():
    sleeper = subprocess.Popen(["sleep", "3600"], process_group=0)
    with open(os.environ["PID_FILE"], "w") as out:
        out.write(str(sleeper.pid))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_what_a_test_moved_to_another_process_group_ends_with_its_child(
    tmp_path: Path, method: str
) -> None:
    (tmp_path / "pytest.ini").write_text("")
    (tmp_path / "test_group.py").write_text(textwrap.dedent(LEAVES_A_GROUP))
    pid_file = tmp_path / "sleeper.pid"
    records: list[TestRecord] = []

    run_pytest_batch(
        ["test_group.py::test_starts_a_process_in_a_group_of_its_own"],
        tmp_path,
        test_timeout=60,
        on_record=records.append,
        start_method=method,
        env={"PID_FILE": str(pid_file)},
    )

    assert [r.outcome for r in records] == ["passed"]
    sleeper = int(pid_file.read_text())
    try:
        assert process_gone(sleeper)
    finally:
        kill_if_alive(sleeper)


def test_what_a_command_moved_to_another_process_group_ends_with_it(tmp_path: Path) -> None:
    script = "import subprocess; print(subprocess.Popen(['sleep', '3600'], process_group=0).pid)"
    result = run_command([sys.executable, "-c", script], cwd=str(tmp_path), timeout=60)

    assert result.exit_code == 0, result.output
    sleeper = int(result.output)
    try:
        assert process_gone(sleeper)
    finally:
        kill_if_alive(sleeper)
