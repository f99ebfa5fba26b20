"""`dtf logs RUN [TEST_ID] [--follow]`: what tests printed, read back from the database.

The follower is a real `dtf` process beside a real worker; the reads after
the run go through the same entry point in this process (they only read the
database), which keeps the test short.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading

import pytest
from sqlalchemy import create_engine, select

from dtf.db.models import Run
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

SUITE = """\
import sys
import time


def test_first():
    print("first says hello")


def test_second():
    print("second complains", file=sys.stderr)
    assert 1 == 2


class TestOne:
    def test_same(self):
        pass


class TestTwo:
    def test_same(self):
        pass


def test_last():
    time.sleep(4)  # the batch is still running while the follower shows the others
    print("last words")
"""


@pytest.fixture
def dtf_logs(cluster_env, monkeypatch, capsys):
    """``dtf logs ARGS`` through dtf's entry point in this process: (exit code, out, err)."""
    from dtf.cli import main

    for name, value in cluster_env.items():
        if name.startswith("DTF_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # main() replaces it

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["logs", *args])
            sys.exit(0)
        out, err = capsys.readouterr()
        return exited.value.code or 0, out, err

    return run


def _run_status(env: dict[str, str], run_id: str) -> str:
    engine = create_engine(env["DTF_DATABASE_URL"])
    with engine.connect() as db:
        status = db.scalar(select(Run.status).where(Run.id == run_id))
    engine.dispose()
    return status


def test_follow_a_running_batch_then_read_each_test_back(
    tmp_path, cluster_env, start_worker, dtf_logs
):
    (tmp_path / "test_talk.py").write_text(SUITE)
    start_worker(cluster_env, queues="cpu", name="logs")
    submitted = run_dtf("submit", ".", env=cluster_env, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()

    follower = subprocess.Popen(
        [sys.executable, "-m", "dtf", "logs", run_id, "--follow", "--interval", "0.1"],
        env=cluster_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout])
    reader.start()
    seen = []
    while not seen or seen[-1] != "first says hello\n":
        seen.append(lines.get(timeout=120))
    # It shows output while the run still goes on: test_last is asleep.
    assert _run_status(cluster_env, run_id) in ("pending", "running")
    assert follower.wait(timeout=120) == 0
    reader.join(timeout=10)
    while not lines.empty():
        seen.append(lines.get_nowait())
    assert follower.stderr.read() == f"dtf: run {run_id} is failed\n"
    header = r"==== {} test_talk\.py::{} \(\d+\.\d\ds on logs@\S+\) ====\n"
    followed = "".join(seen)
    assert re.fullmatch(
        header.format("PASSED", "test_first") + "---- stdout ----\nfirst says hello\n"
        + header.format("FAILED", "test_second") + "---- stderr ----\nsecond complains\n"
        + "---- traceback ----\n(.*\n)*?E +assert 1 == 2\n(.*\n)*?"
        + header.format("PASSED", "TestOne::test_same")  # no output: its header alone
        + header.format("PASSED", "TestTwo::test_same")
        + header.format("PASSED", "test_last") + "---- stdout ----\nlast words\n",
        followed,
    ), followed  # fmt: skip

    # Afterwards: which tests printed something...
    code, out, _ = dtf_logs(run_id)
    assert code == 0
    rows = out.splitlines()
    assert rows[0] == f"run {run_id}: 3 of 5 results captured output"
    assert rows[1] == "  PASSED    test_talk.py::test_first  (stdout 1 line)"
    assert re.fullmatch(
        r"  FAILED    test_talk\.py::test_second  \(stderr 1 line, traceback \d+ lines\)", rows[2]
    )
    assert rows[3] == "  PASSED    test_talk.py::test_last  (stdout 1 line)"
    assert rows[4:] == [f"`dtf logs {run_id} TEST_ID` prints a test's output"]

    # ...and what, by node id or by its unambiguous end.
    for test_id in ("test_talk.py::test_second", "test_second"):
        code, out, _ = dtf_logs(run_id, test_id)
        assert code == 0
        assert re.match(header.format("FAILED", "test_second"), out)
        assert "---- stderr ----\nsecond complains\n---- traceback ----\n" in out
        assert "E       assert 1 == 2" in out
    code, out, _ = dtf_logs(run_id, "TestOne::test_same")
    assert out.splitlines()[1:] == ["(no captured output)"]
    # A finished run is followed to its end at once.
    code, out, _ = dtf_logs(run_id, "test_last", "--follow")
    assert (code, out.splitlines()[1:]) == (0, ["---- stdout ----", "last words"])

    # What cannot be shown: one line on stderr, exit 2.
    refusals = {
        ("nope",): "no run with id 'nope'; `dtf status` shows the latest",
        (run_id, "test_missing.py::test_x"): (
            f"run {run_id} has no test 'test_missing.py::test_x'; "
            f"`dtf logs {run_id}` lists its tests with output"
        ),
        (run_id, "test_same"): (
            f"'test_same' names 2 tests of run {run_id} (test_talk.py::TestOne::test_same, "
            "test_talk.py::TestTwo::test_same): give the whole node id"
        ),
    }
    for args, message in refusals.items():
        assert dtf_logs(*args) == (2, "", f"dtf: error: {message}\n"), args


def test_a_command_tasks_output_is_found_by_its_name_and_each_task_ends(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    (tmp_path / "run.json").write_text(
        '{"tasks": [{"type": "test", "paths": ["test_one.py"]},'
        ' {"type": "command", "name": "greet", "command": "echo hello from greet"}]}'
    )
    env = clean_env(DTF_HOME=str(tmp_path / "home"))
    ran = run_dtf("run", "--task-file", "run.json", env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = re.search(r"\(run (\w+)\)", ran.stdout).group(1)

    by_name = run_dtf("logs", run_id, "greet", env=env, cwd=tmp_path)
    listing = run_dtf("logs", run_id, env=env, cwd=tmp_path)
    report = run_dtf("report", run_id, "--format", "json", env=env, cwd=tmp_path)

    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.splitlines() == [
        "--- command 'greet': done, exit 0 ---",
        "hello from greet",
    ]
    assert "done      greet  (output 1 line)" in listing.stdout
    tasks = {t["type"]: t["status"] for t in json.loads(report.stdout)["tasks"]}
    assert tasks == {"test": "done", "command": "done"}
