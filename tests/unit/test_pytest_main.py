"""`python -m dtf.executor.pytest_main`: pytest as a spawned batch runs it, less the teardown."""

from __future__ import annotations

import subprocess
import sys

SUITE = """
import atexit, threading, time

def test_leaves_an_exit_function_and_a_thread():
    def late_write():
        time.sleep(0.3)
        with open(LOG, "a") as fh:
            fh.write("thread joined\\n")

    atexit.register(lambda: open(LOG, "a").write("atexit ran\\n"))
    threading.Thread(target=late_write).start()
    print("buffered output", end="")

def test_fails():
    assert 1 == 2
"""


def run_main(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "dtf.executor.pytest_main", "-p", "no:cacheprovider", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_it_exits_with_pytests_code_after_the_tests_threads_and_exit_functions(tmp_path):
    log = tmp_path / "log.txt"
    (tmp_path / "test_suite.py").write_text(f"LOG = {str(log)!r}\n" + SUITE)

    proc = run_main(["-q", "-s", "test_suite.py"], tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "buffered output" in proc.stdout
    assert "assert 1 == 2" in proc.stdout  # assertion rewriting, as under python -m pytest
    assert log.read_text().splitlines() == ["thread joined", "atexit ran"]


def test_usage_errors_give_pytests_exit_code_and_message(tmp_path):
    proc = run_main(["no_such_dir"], tmp_path)
    assert proc.returncode == 4
    assert "file or directory not found: no_such_dir" in proc.stderr


def test_it_passes_when_the_tests_pass(tmp_path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    proc = run_main(["-q", "test_ok.py"], tmp_path)
    assert proc.returncode == 0
    assert "1 passed" in proc.stdout


def test_a_system_exit_gives_the_status_the_interpreter_would(capsys):
    from dtf.errors import system_exit_code

    assert [system_exit_code(SystemExit(c)) for c in (None, 0, 4)] == [0, 0, 4]
    assert system_exit_code(SystemExit("no such run")) == 1
    assert capsys.readouterr().err == "no such run\n"
