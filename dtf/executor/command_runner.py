"""Run a ``command`` task's shell command with a timeout and bounded output."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dtf.executor.lifetime import die_with_parent
from dtf.executor.records import bounded


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str
    timed_out: bool


def run_command(
    command: str | Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str] | None = None,
    timeout: float,
) -> CommandResult:
    """Run ``command`` (a string goes through the shell), stdout and stderr merged."""
    process = subprocess.Popen(
        command,
        shell=isinstance(command, str),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so a timeout kills the command's children too
        preexec_fn=die_with_parent,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        output += f"\n[dtf] command exceeded its timeout of {timeout:g}s and was killed\n".encode()
        timed_out = True
    text = output.decode("utf-8", errors="replace")
    return CommandResult(
        exit_code=process.returncode, output=bounded(text) or "", timed_out=timed_out
    )
