"""A command task's command: its whole process group ends with it, its output is bounded
without being held in memory, and a timeout or a cancel kills it."""

from __future__ import annotations

from dtf.executor.command_runner import run_command
from dtf.executor.records import MAX_TEXT_BYTES
from tests.support.processes import process_gone


def test_a_background_process_the_command_leaves_ends_with_it(tmp_path):
    result = run_command("sleep 600 & echo $!; echo done", cwd=str(tmp_path), timeout=300)

    assert (result.exit_code, result.timed_out, result.cancelled) == (0, False, False)
    pid, done = result.output.split()
    assert done == "done"
    assert process_gone(int(pid))


def test_a_huge_output_keeps_its_head_and_tail_only(tmp_path):
    command = "python3 -c \"print('first'); print('x' * 20_000_000); print('last')\""

    result = run_command(command, cwd=str(tmp_path), timeout=300)

    assert result.exit_code == 0
    assert len(result.output.encode()) <= MAX_TEXT_BYTES
    assert result.output.startswith("first")
    assert result.output.rstrip().endswith("last")
    assert "bytes cut" in result.output


def test_a_command_past_its_timeout_is_killed_with_what_it_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    result = run_command(f"sleep 600 & echo $! > {pid_file}; wait", cwd=str(tmp_path), timeout=1)

    assert result.timed_out and not result.cancelled
    assert "exceeded its timeout of 1s" in result.output
    assert process_gone(int(pid_file.read_text()))


def test_a_cancelled_command_is_killed(tmp_path):
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) > 1  # the second look sees the cancel

    result = run_command("echo started; sleep 600", cwd=str(tmp_path), timeout=600,
                         cancelled=cancelled)  # fmt: skip

    assert result.cancelled and not result.timed_out
    assert result.output.startswith("started")
    assert "its run was cancelled" in result.output
