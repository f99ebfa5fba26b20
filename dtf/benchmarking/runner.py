"""Run one benchmark job in a measurement process, so that a crash or an OOM never takes the worker.

The process is warm (dtf.benchmarking.warm_pool): it imported its frameworks
for an earlier job and stays up for the next. A process that dies mid-shape
loses that shape (``failed``, with why); the shapes it did not reach get a
fresh process, and the dead or poisoned one is never used again. A model that
is not on disk is ``broken`` (the worker lacks files; nothing about the model
was learned).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any

from dtf.benchmarking.child import POISONED
from dtf.benchmarking.warm_pool import OFFLINE, POOL, WarmPool

__all__ = ["OFFLINE", "JobOutcome", "ShapeOutcome", "run_job"]


@dataclass
class ShapeOutcome:
    status: str  # done | failed | broken
    samples: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: when its measuring began and ended (seconds since the epoch), where known
    started_at: float | None = None
    finished_at: float | None = None
    warmup_s: float | None = None


@dataclass
class JobOutcome:
    shapes: dict[str, ShapeOutcome]  # by shape label
    load_s: float | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    children: int = 0
    #: benchmark processes that died and were started again (retry_policy)
    retries: int = 0
    #: of ``children``, the processes started for this job (the others were warm)
    fresh: int = 0
    #: each process's pid, its job count and the seconds its imports took for this job
    processes: list[dict[str, Any]] = field(default_factory=list)


def run_job(
    job: dict[str, Any],
    *,
    cwd: str,
    timeout: float,
    max_retries: int = 0,
    retry_delay_s: float = 0.0,
    pool: WarmPool | None = None,
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
    pool = pool or POOL
    idle_race = False
    while pending:
        process, fresh = pool.take(job, cwd)
        outcome.children += 1
        outcome.fresh += fresh
        events, rc, output, timed_out = process.measure(
            {**job, "shapes": [shape for _, shape in pending]}, deadline - time.monotonic()
        )
        pool.give_back(job, cwd, process)
        if rc == 0 and not events and not fresh and not idle_race:
            idle_race, outcome.children = True, outcome.children - 1
            continue  # it ended idle as the job was sent: not a death
        started = started_at = None
        for event in events:
            kind = event["event"]
            if kind == "loaded":
                outcome.load_s = outcome.load_s or event["load_s"]
                outcome.environment = outcome.environment or event["environment"]
                outcome.processes.append(event["process"])
            elif kind == "load_error":
                status = "broken" if event.get("missing") else "failed"
                for label, _ in pending:
                    outcome.shapes[label] = ShapeOutcome(status, error=event["error"])
                return outcome
            elif kind == "start":
                started, started_at = event["shape"], event["at"]
            elif kind == "result":
                outcome.shapes[event["shape"]] = ShapeOutcome(
                    "done",
                    samples=event["samples"],
                    peak_rss_mb=event["peak_rss_mb"],
                    peak_gpu_mb=event["peak_gpu_mb"],
                    details=event.get("details") or {},
                    started_at=started_at,
                    finished_at=event["at"],
                    warmup_s=event.get("warmup_s"),
                )
                started = None
            elif kind == "error":
                outcome.shapes[event["shape"]] = ShapeOutcome(
                    "failed", error=event["error"], started_at=started_at,
                    finished_at=event["at"],
                )  # fmt: skip
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
        if rc == POISONED:
            continue  # an error poisoned the device: its shape failed, a fresh process goes on
        if rc is None:  # it said it was done without measuring them (never expected)
            for label, _ in pending:
                outcome.shapes[label] = ShapeOutcome("failed", error="not measured")
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
        outcome.shapes[started] = ShapeOutcome("failed", error=why, started_at=started_at)
        pending = [(label, shape) for label, shape in pending if label != started]
    return outcome


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
