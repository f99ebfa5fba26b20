"""The measurement process: imports its frameworks once, then measures job after job.

``python -m dtf.benchmarking.child JOBS_FD EVENTS_FD IDLE_S``: it reads one job
(a JSON line) at a time from ``JOBS_FD`` and writes events, one JSON line each,
to ``EVENTS_FD``: ``loaded`` (or ``load_error``), then per shape ``start`` and
``result`` or ``error``, then ``done``. A line is flushed as soon as it is
written, so a crash or an out-of-memory kill loses only the shape that was
running. It exits when no job came for ``IDLE_S`` seconds, when the pool
process closes the pipe, and after an error that poisons the device (a CUDA
error other than out of memory): such a process is never used again.
"""

from __future__ import annotations

import gc
import json
import os
import select
import sys
import time
from typing import Any, TextIO

from dtf.benchmarking.contract import LoadRequest, ModelNotOnDisk
from dtf.benchmarking.environment import environment
from dtf.benchmarking.measure import DeviceClock, measure
from dtf.benchmarking.runtimes import device_for, runtime_for

#: Exit status of a process whose device context an error poisoned.
POISONED = 3
#: Words of an error after which the device is not to be trusted again.
_POISON = ("CUDA error", "HIP error", "CUBLAS_STATUS_", "CUDNN_STATUS_", "device-side assert")


def main(argv: list[str]) -> int:
    jobs_fd, events_fd, idle_s = int(argv[0]), int(argv[1]), float(argv[2])
    with (
        os.fdopen(jobs_fd, "r", encoding="utf-8") as jobs,
        os.fdopen(events_fd, "w", encoding="utf-8") as out,
    ):
        served = 0
        while True:
            if not select.select([jobs], [], [], idle_s)[0]:
                return 0  # idle for too long
            line = jobs.readline()
            if not line:
                return 0  # the pool process closed the pipe
            served += 1
            code = run(json.loads(line), out, served)
            out.write(json.dumps({"event": "done", "code": code}) + "\n")
            out.flush()
            if code == POISONED:
                return POISONED


def run(job: dict[str, Any], out: TextIO, served: int = 1) -> int:
    def emit(**event: Any) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    request = LoadRequest(
        model=job["model"],
        hardware=job["hardware"],
        device=device_for(job["hardware"]),
        precision=job["precision"],
        workdir=job["workdir"],
        options=job.get("options") or {},
    )
    runtime = runtime_for(job["runtime"])
    try:
        started = time.perf_counter()
        runtime.prepare(request)  # the imports: paid by a process's first job only
        prepare_s = time.perf_counter() - started
        started = time.perf_counter()
        loaded = runtime.load(request)
        load_s = time.perf_counter() - started
    except ModelNotOnDisk as exc:
        emit(event="load_error", missing=True, error=_line(exc))
        return 2
    except Exception as exc:
        emit(event="load_error", missing=False, error=f"loading failed: {_describe(exc)}")
        return POISONED if poisons(exc) else 1
    found = environment(request.hardware)
    found.update(loaded.environment)
    process = {"pid": os.getpid(), "job": served, "prepare_s": prepare_s}
    emit(event="loaded", load_s=load_s, environment=found, process=process)
    clock = DeviceClock(request.hardware)
    code = 0
    for shape in job["shapes"]:
        label = "x".join(str(d) for d in shape)
        emit(event="start", shape=label, at=time.time())
        try:
            result = measure(
                loaded, clock, job["batch_size"], shape, job["warmup"], job["iterations"]
            )
        except Exception as exc:
            poisoned = poisons(exc)
            emit(event="error", shape=label, error=_describe(exc), at=time.time(),
                 poisoned=poisoned)  # fmt: skip
            if poisoned:
                code = POISONED  # the rest is measured by a fresh process
                break
            clock.reset_memory()  # an out-of-memory shape must not starve the next one
            continue
        emit(
            event="result",
            shape=label,
            samples=result.samples,
            peak_rss_mb=result.peak_rss_mb,
            peak_gpu_mb=result.peak_gpu_mb,
            details=result.details,
            warmup_s=result.warmup_s,
            at=time.time(),
        )
    del loaded  # the next job loads its own model
    gc.collect()
    if code != POISONED:
        clock.reset_memory()
    return code


def poisons(exc: BaseException) -> bool:
    """True when ``exc`` leaves the device context unusable (a CUDA out-of-memory does not)."""
    if type(exc).__name__ in ("AcceleratorError", "OutOfMemoryError"):
        return type(exc).__name__ == "AcceleratorError"
    text = str(exc)
    return any(word in text for word in _POISON)


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return f"out of memory: {_line(exc)}"
    return f"{name}: {_line(exc)}"


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:2000] or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
