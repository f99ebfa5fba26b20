"""Run one benchmark job in child processes, so that a crash or an OOM never takes the worker.

A child that dies mid-shape loses that shape (``failed``, with why); the
shapes it did not reach get a new child. A model that is not on disk is
``broken`` (the worker lacks files; nothing about the model was learned).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtf.executor.child_env import child_env
from dtf.executor.lifetime import die_with_parent
from dtf.launch import python_module_command

#: Bytes of a crashed child's output quoted in its error.
OUTPUT_TAIL = 2000
#: Environment of every child: weights come from disk, never from a hub.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass
class ShapeOutcome:
    status: str  # done | failed | broken
    samples: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class JobOutcome:
    shapes: dict[str, ShapeOutcome]  # by shape label
    load_s: float | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    children: int = 0
    #: benchmark processes that died and were started again (retry_policy)
    retries: int = 0


def run_job(
    job: dict[str, Any],
    *,
    cwd: str,
    timeout: float,
    max_retries: int = 0,
    retry_delay_s: float = 0.0,
) -> JobOutcome:
    """Measure every shape of ``job`` (see dtf.benchmarking.child) within ``timeout`` seconds.

    A shape whose benchmark process died under it (a crash, a kill, the OOM killer) is
    measured again in a fresh process up to ``max_retries`` times, ``retry_delay_s``
    apart (the task's ``retry_policy``); an error the model raised is a result."""
    labels = ["x".join(str(d) for d in shape) for shape in job["shapes"]]
    outcome = JobOutcome(shapes={})
    deaths: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    pending = list(zip(labels, job["shapes"], strict=True))
    with tempfile.TemporaryDirectory(prefix="dtf-bench-") as folder:
        while pending:
            outcome.children += 1
            events, rc, output, timed_out = _child(
                {**job, "shapes": [shape for _, shape in pending]},
                Path(folder) / str(outcome.children), cwd, deadline - time.monotonic(),
            )  # fmt: skip
            started = None
            for event in events:
                kind = event["event"]
                if kind == "loaded":
                    outcome.load_s = outcome.load_s or event["load_s"]
                    outcome.environment = outcome.environment or event["environment"]
                elif kind == "load_error":
                    status = "broken" if event.get("missing") else "failed"
                    for label, _ in pending:
                        outcome.shapes[label] = ShapeOutcome(status, error=event["error"])
                    return outcome
                elif kind == "start":
                    started = event["shape"]
                elif kind == "result":
                    outcome.shapes[event["shape"]] = ShapeOutcome(
                        "done",
                        samples=event["samples"],
                        peak_rss_mb=event["peak_rss_mb"],
                        peak_gpu_mb=event["peak_gpu_mb"],
                        details=event.get("details") or {},
                    )
                    started = None
                elif kind == "error":
                    outcome.shapes[event["shape"]] = ShapeOutcome("failed", error=event["error"])
                    started = None
            pending = [(label, shape) for label, shape in pending if label not in outcome.shapes]
            if not pending:
                break
            if timed_out:
                spent = f"the job's timeout of {timeout:g}s"
                for label, _ in pending:
                    why = f"timed out: {spent} ran out" + (
                        " while measuring it" if label == started else " before it was reached"
                    )
                    outcome.shapes[label] = ShapeOutcome("failed", error=why)
                break
            why = _death(rc, output)
            where = started or ""  # "": while loading or between shapes
            deaths[where] = deaths.get(where, 0) + 1
            if deaths[where] <= max_retries:
                outcome.retries += 1
                time.sleep(max(0.0, min(retry_delay_s, deadline - time.monotonic())))
                continue
            if started is None:  # nothing more to learn from another try
                for label, _ in pending:
                    outcome.shapes[label] = ShapeOutcome("failed", error=why)
                break
            outcome.shapes[started] = ShapeOutcome("failed", error=why)
            pending = [(label, shape) for label, shape in pending if label != started]
    return outcome


def _child(
    job: dict[str, Any], base: Path, cwd: str, timeout: float
) -> tuple[list[dict[str, Any]], int, str, bool]:
    job_file, events_file, output_file = (base.with_suffix(s) for s in (".json", ".jsonl", ".out"))
    job_file.write_text(json.dumps(job), encoding="utf-8")
    events_file.touch()
    timed_out = False
    with output_file.open("wb") as output:
        process = subprocess.Popen(
            python_module_command(
                "dtf.benchmarking.child", str(job_file), str(events_file), keep_cwd=True
            ),
            cwd=cwd,
            env=child_env(os.environ, OFFLINE),  # without dtf's settings and secrets
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        try:
            rc = process.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            rc = process.wait()
            timed_out = True
    events = []
    for line in events_file.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
    tail = output_file.read_bytes()[-OUTPUT_TAIL:].decode("utf-8", errors="replace")
    return events, rc, tail, timed_out


def _death(rc: int, output: str) -> str:
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        why = f"the benchmark process was killed by {name}"
        if -rc == signal.SIGKILL:
            why += " (out of memory?)"
    else:
        why = f"the benchmark process exited with code {rc}"
    last = [line for line in output.strip().splitlines() if line.strip()]
    return why + (f": {last[-1].strip()[:500]}" if last else "")
