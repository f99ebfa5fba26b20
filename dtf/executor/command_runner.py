"""Run a ``command`` task's shell command with a timeout and bounded output.

The command runs in a process group of its own, its output goes to a temporary file
(never all into memory), and the command ends with its own process: when it exits,
times out or is cancelled, whatever it started in its group or session (a ``server &``
left running) is killed, so no background process keeps the task, or its output, open
(daemons that left both: :func:`dtf.executor.reaper.ending_orphans`, which
``execute_command`` runs it in). It sees the worker's environment less dtf's own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dtf.executor import reaper
from dtf.executor.child_env import child_env
from dtf.executor.lifetime import die_with_parent
from dtf.executor.records import MAX_TEXT_BYTES, bounded

#: Seconds between two looks at the command (exited? timed out? cancelled?).
POLL_S = 0.2


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str
    timed_out: bool
    cancelled: bool = False


def run_command(
    command: str | Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str] | None = None,
    timeout: float,
    cancelled: Callable[[], bool] | None = None,
) -> CommandResult:
    """Run ``command`` (a string goes through the shell), stdout and stderr merged.

    ``env``: variables set over this process's environment less dtf's settings and
    secrets (:mod:`dtf.executor.child_env`). ``cancelled``: asked while the command
    runs; once True, the command is killed.
    """
    with tempfile.TemporaryFile(prefix="dtf-command-") as output:
        process = subprocess.Popen(
            command,
            shell=isinstance(command, str),
            cwd=cwd,
            env=child_env(os.environ, env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: what it starts ends with it
            preexec_fn=die_with_parent,
        )
        with reaper.watching(process.pid):
            ending = _wait(process, time.monotonic() + timeout, cancelled)
            _kill_group(process.pid)
            reaper.kill_session(process.pid)  # also what left the group, not the session
            process.wait()
        text = _read_bounded(output)
    if ending == "timeout":
        text += f"\n[dtf] command exceeded its timeout of {timeout:g}s and was killed\n"
    elif ending == "cancelled":
        text += "\n[dtf] command was killed: its run was cancelled\n"
    return CommandResult(
        exit_code=process.returncode,
        output=bounded(text) or "",
        timed_out=ending == "timeout",
        cancelled=ending == "cancelled",
    )


def _wait(
    process: subprocess.Popen, deadline: float, cancelled: Callable[[], bool] | None
) -> str | None:
    """Wait for ``process``: None when it exited, else "timeout" or "cancelled"."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        try:
            process.wait(timeout=min(POLL_S, left))
            return None
        except subprocess.TimeoutExpired:
            if cancelled is not None and cancelled():
                return "cancelled"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing left in it
        os.killpg(pgid, signal.SIGKILL)


def _read_bounded(file, limit: int = MAX_TEXT_BYTES - 512) -> str:
    """The file's text, its head and tail only when it is longer than ``limit`` bytes
    (read from the disk, so that a command printing gigabytes costs no memory), with
    room left for the lines dtf adds."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    if size <= limit:
        data = file.read()
    else:
        head = file.read(limit // 2)
        file.seek(size - limit // 2)
        data = head + f"\n... [{size - 2 * (limit // 2)} bytes cut] ...\n".encode() + file.read()
    return data.decode("utf-8", errors="replace")
