"""`dtf run --wait` progress: a live bar on a terminal, plain lines in a log, `-v` outcomes.

The terminal case runs `dtf` on a real pseudo-terminal, as a person at a
shell would; the plain case captures its output, as CI does.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from dtf.progress import FinishedTest, NewResults, outcome_line
from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")
#: Settings that would make rich treat a pipe as a terminal, or a terminal as a dumb one.
RICH_ENV = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")


@pytest.fixture
def cluster_env(cluster_env) -> dict[str, str]:
    """The deployment's environment without the variables that change rich's output."""
    for name in RICH_ENV:
        cluster_env.pop(name, None)
    return cluster_env


def _run_on_terminal(args: list[str], env: dict, cwd, timeout: float = 120) -> tuple[int, str]:
    """Run ``dtf ARGS`` with a 160x40 pseudo-terminal as its stdin, stdout and stderr."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "dtf", *args],
        env={**env, "TERM": "xterm-256color"}, cwd=cwd,
        stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)


SLOW_SUITE = """\
import time

import pytest


@pytest.mark.parametrize("n", range(6))
def test_slow(n):
    time.sleep(0.4)
"""


def test_on_a_terminal_a_live_bar_shows_counts_and_eta(tmp_path, cluster_env, start_worker):
    (tmp_path / "test_slow.py").write_text(SLOW_SUITE)
    worker = start_worker(cluster_env, queues="cpu", name="tty")

    code, raw = _run_on_terminal(["run", ".", "-v"], cluster_env, tmp_path)

    text = ANSI.sub("", raw)
    assert code == 0, text[-3000:]
    run_id = re.search(r"\(run (\w+)\)", text).group(1)
    assert "\x1b[" in raw  # drawn with terminal control sequences, not printed as lines
    frames = re.findall(  # frames follow each other without newlines: cursor moves
        rf"dtf run {run_id} [━╸╺]+ (\d)/6 (.*?) (\d+:\d\d:\d\d) eta (-:--:--|\d+:\d\d:\d\d)", text
    )
    assert frames, text[-3000:]
    done = [int(n) for n, *_ in frames]
    assert done == sorted(done) and 0 < max(done) <= 6
    assert any(re.fullmatch(r"\d passed, \d remaining", counts) for _, counts, _, _ in frames)
    assert any(re.fullmatch(r"\d+:\d\d:\d\d", eta) for *_, eta in frames)  # an estimate
    assert "dtf: [" not in text  # no plain progress lines on a terminal
    # -v: each outcome printed above the bar as it finishes.
    for n in range(6):
        assert re.search(
            rf"PASSED +test_slow\.py::test_slow\[{n}\]  0\.\d\ds  {re.escape('tty@')}\S+", text
        ), text[-3000:]
    assert f"dtf: passed: 6 passed (run {run_id})" in text
    assert worker.process.poll() is None


OUTCOMES_SUITE = """\
import sys

import pytest


def test_pass():
    print("pass speaks")


def test_fail():
    print("fail complains", file=sys.stderr)
    assert 1 == 2


def test_skip():
    pytest.skip("not today")
"""


def test_in_a_log_plain_lines_and_with_v_one_line_per_test(tmp_path, cluster_env, start_worker):
    (tmp_path / "test_outcomes.py").write_text(OUTCOMES_SUITE)
    start_worker(cluster_env, queues="cpu", name="plain")

    proc = run_dtf("run", ".", env=cluster_env, cwd=tmp_path)

    assert proc.returncode == 1, proc.stderr
    assert "\x1b[" not in proc.stderr + proc.stdout  # no colours, no cursor movement
    assert "━" not in proc.stderr
    run_id = re.search(r"\(run (\w+)\)", proc.stdout).group(1)
    progress = proc.stderr.splitlines()
    assert progress[-1] == "dtf: [3/3] 1 passed, 1 failed, 1 skipped"
    for line in progress[:-1]:  # e.g. "dtf: [1/3] 1 passed, 2 remaining (eta 0:00:02)"
        assert re.fullmatch(r"dtf: \[\d/3\] .*\d remaining( \(eta \d+:\d\d:\d\d\))?", line)

    # `dtf wait` follows a run the same way; -v adds a line per test.
    verbose = run_dtf("wait", run_id, "-v", env=cluster_env, cwd=tmp_path)
    assert verbose.returncode == 1
    *outcomes, last = verbose.stderr.splitlines()
    assert last == progress[-1]
    assert sorted(line.split()[0] for line in outcomes) == ["FAILED", "PASSED", "SKIPPED"]
    for line in outcomes:
        assert re.fullmatch(r"[A-Z]+ +test_outcomes\.py::test_\w+  \d+\.\d\ds  plain@\S+", line)


def test_new_results_returns_each_result_once_even_when_ids_become_visible_late(tmp_path):
    # Two workers can commit out of id order: a row below the highest id seen
    # must still be returned when it shows up, and nothing returned twice.
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from dtf.db.models import Base, Run, RunTask, TestItem, TestResult

    engine = create_engine(f"sqlite:///{tmp_path / 'results.sqlite'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Run(id="r1", workdir="/"))
        session.flush()
        session.add(RunTask(id=1, run_id="r1", position=0, type="test", queue="cpu",
                            workdir="/", timeout=1.0))  # fmt: skip
        session.flush()
        session.add_all(TestItem(id=i, run_id="r1", task_id=1, nodeid=f"t{i}", path="t")
                        for i in range(1, 5))  # fmt: skip
        session.flush()

        def stored(*row_ids: int, attempt: int = 1) -> None:
            session.add_all(
                TestResult(
                    id=i, run_id="r1", item_id=i, nodeid=f"t{i}", attempt=attempt,
                    outcome="passed", when="call", duration=0.5, worker="w@h",
                )
                for i in row_ids
            )  # fmt: skip
            session.flush()

        feed = NewResults("r1", settle_s=3600)
        stored(1, 3)
        assert [t.nodeid for t in feed(session)] == ["t1", "t3"]
        stored(2)  # committed after 3, though its id is lower
        assert [t.nodeid for t in feed(session)] == ["t2"]
        assert feed(session) == []
        stored(4, attempt=2)
        assert [(t.id, t.outcome, t.worker, t.attempt) for t in feed(session)] == [
            (4, "passed", "w@h", 2)
        ]
        # Once ids have settled the floor moves past them and they are forgotten.
        settled = NewResults("r1", settle_s=0)
        assert [t.id for t in settled(session)] == [1, 2, 3, 4]
        assert settled(session) == []
        assert (settled.floor, settled.returned) == (4, set())
    engine.dispose()


def test_an_outcome_line_names_the_phase_of_a_teardown_error_and_the_attempt_of_a_rerun():
    teardown = FinishedTest(id=1, nodeid="t.py::test_x", outcome="error", when="teardown",
                            duration=1.5, worker=None)  # fmt: skip
    assert outcome_line(teardown).plain == "ERROR (teardown) t.py::test_x  1.50s  -"
    rerun = FinishedTest(id=2, nodeid="t.py::test_y", outcome="passed", when="call",
                         duration=0.25, worker="w@h", attempt=2)  # fmt: skip
    assert outcome_line(rerun).plain == "PASSED    t.py::test_y  0.25s  w@h  attempt 2"


def test_the_status_reader_sees_the_end_over_one_connection_and_outlives_a_broken_one(
    postgres_url,
):
    import psycopg2
    from sqlalchemy import update

    from dtf.db.models import Base, Run
    from dtf.db.session import get_engine, session_scope
    from dtf.progress import RunStatusReader
    from tests.conftest import PG_ADMIN

    Base.metadata.create_all(get_engine(postgres_url))
    with session_scope(postgres_url) as session:
        session.add(Run(id="r1", workdir="/"))
    reader = RunStatusReader(postgres_url, "r1")
    assert reader.over() is False
    backend = reader._connection.connection.dbapi_connection.get_backend_pid()
    assert reader.over() is False
    assert reader._connection.connection.dbapi_connection.get_backend_pid() == backend

    with session_scope(postgres_url) as session:
        session.execute(update(Run).where(Run.id == "r1").values(status="passed"))
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cursor:  # the server drops the reader's connection
        cursor.execute("SELECT pg_terminate_backend(%s)", (backend,))
    admin.close()
    assert reader.over() is True
    reader.close()
