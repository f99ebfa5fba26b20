"""What plugins print in a worker, shown by the ``dtf`` that waits for the run.

Coordinator-side hooks run in the ``dtf`` CLI process and print to its terminal.
Worker-side hooks (``dtf_test_finished``, ``dtf_task_*``, ...) run in a worker,
whose output is its log. On the embedded default the workers share the CLI's
home (the filesystem broker lives there), so a worker also keeps what a hook
printed for a run in ``$DTF_HOME/plugin-output/RUN.jsonl``, and the ``dtf run``
or ``dtf wait`` that sees the run finish prints it, stdout to stdout and stderr
to stderr, before its summary, then deletes the file. On a cluster (workers on
other machines, another home) it stays in the worker's log only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from dtf.config import Settings

FOLDER = "plugin-output"


def output_file(home: Path, run_id: str) -> Path:
    return home / FOLDER / f"{run_id}.jsonl"


def keeper(settings: Settings):
    """The ``output_sink`` of a worker's plugin manager (see :mod:`dtf.plugins.manager`)."""

    def keep(plugin: str, run_id: str | None, out: str, err: str) -> None:
        # Where it went before: the worker's log (Celery's proxy of stdout and stderr).
        for stream, text in ((sys.stdout, out), (sys.stderr, err)):
            if text:
                stream.write(text)
                with contextlib.suppress(Exception):
                    stream.flush()
        if run_id is None or not settings.embedded:
            return
        lines = "".join(
            json.dumps({"plugin": plugin, "stream": name, "text": text}) + "\n"
            for name, text in (("stdout", out), ("stderr", err))
            if text
        )
        path = output_file(settings.home, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One append per hook call: pool processes of the worker write the same file.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)

    return keep


def print_kept(home: Path, run_id: str) -> None:
    """Print what the workers kept for ``run_id``, then forget it; never raises."""
    path = output_file(home, run_id)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return
    for line in lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            entry = json.loads(line)
            stream = sys.stderr if entry["stream"] == "stderr" else sys.stdout
            stream.write(entry["text"])
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    path.unlink(missing_ok=True)
