"""Daemons a test or a command leaves behind end with their batch or task, and keep no
slot of the worker (issue 16, item 3): on one real worker (Redis, PostgreSQL), a test
double-forks daemons holding inherited fds, then an exclusive test of the same run takes
the whole worker; a command task leaves a daemon too."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration

#: Two daemons, each out of the test's process group and session (fork, setsid, fork,
#: the middle one exits): a fork of the pytest child that keeps every fd it inherited
#: (pytest's, the worker's), and ``sleep`` started with an inherited fd of the test's.
LEAVES_DAEMONS = """\
import os, time
from pathlib import Path

def daemon(name, run):
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write, str(os.getpid()).encode())
            run()
        os._exit(0)
    os.waitpid(middle, 0)
    os.close(write)
    pid = os.read(read, 64).decode()
    (Path(os.environ["DAEMON_DIR"]) / name).write_text(pid)

def sleeps_in_python():
    time.sleep(3600)
    os._exit(0)

def sleeps_with_an_inherited_fd():
    held = os.open(Path(os.environ["DAEMON_DIR"]) / "held", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(held, True)
    os.execvp("sleep", ["sleep", "3600"])

def test_leaves_daemons():
    daemon("forked.pid", sleeps_in_python)
    daemon("sleep.pid", sleeps_with_an_inherited_fd)
"""

#: Runs after the daemons' batch, alone on the worker: the daemons are gone by then.
EXCLUSIVE = """\
import os
from pathlib import Path
import pytest

@pytest.mark.dtf(exclusive=True)
def test_has_the_worker_to_itself():
    folder = Path(os.environ["DAEMON_DIR"])
    pids = {name: int((folder / name).read_text()) for name in ("forked.pid", "sleep.pid")}
    alive = {name: pid for name, pid in pids.items() if os.path.exists(f"/proc/{pid}")}
    assert alive == {}
"""

COMMAND = "setsid -f sh -c 'echo $$ > \"$DAEMON_DIR/command.pid\"; exec sleep 3600'"


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_daemons_end_with_their_batch_and_keep_no_slot(tmp_path, cluster_env, start_worker):
    suite, daemons = tmp_path / "suite", tmp_path / "daemons"
    suite.mkdir()
    daemons.mkdir()
    (suite / "test_daemons.py").write_text(LEAVES_DAEMONS)
    (suite / "test_exclusive.py").write_text(EXCLUSIVE)
    # In this order on one worker slot: the daemons' batch, then the exclusive one.
    tasks = [
        {"type": "test", "name": "daemons", "paths": ["test_daemons.py"]},
        {"type": "test", "name": "exclusive", "paths": ["test_exclusive.py"]},
        {"type": "command", "name": "command", "command": COMMAND},
    ]
    (suite / "run.json").write_text(json.dumps({"tasks": tasks}))
    env = {**cluster_env, "DAEMON_DIR": str(daemons)}
    start_worker(env, queues="cpu", concurrency=1)

    try:
        # Before the fix the exclusive batch waited for the daemons' hour: the timeout
        # is only a hang guard.
        proc = run_dtf("run", "--task-file", "run.json", env=env, cwd=suite)

        # The exclusive test found both daemons' pid files: it ran after their batch.
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 passed, 1/1 commands" in proc.stdout
        pids = {p.name: int(p.read_text()) for p in daemons.glob("*.pid")}
        assert sorted(pids) == ["command.pid", "forked.pid", "sleep.pid"]
        assert {name for name, pid in pids.items() if alive(pid)} == set()
    finally:
        for pid_file in daemons.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
