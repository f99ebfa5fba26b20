"""The benchmark's child process: load the model once, measure each shape, one JSON line each.

``python -m dtf.benchmarking.child JOB.json EVENTS.jsonl``. Events, in order:
``loaded`` (or ``load_error``), then per shape ``start`` and ``result`` or
``error``. A line is flushed as soon as it is written, so a crash or an
out-of-memory kill loses only the shape that was running.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from dtf.benchmarking.contract import LoadRequest, ModelNotOnDisk
from dtf.benchmarking.environment import environment
from dtf.benchmarking.measure import DeviceClock, measure
from dtf.benchmarking.runtimes import device_for, runtime_for


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as file:
        job = json.load(file)
    with open(argv[1], "a", encoding="utf-8") as out:
        return run(job, out)


def run(job: dict[str, Any], out: TextIO) -> int:
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
        runtime.prepare(request)
        started = time.perf_counter()
        loaded = runtime.load(request)
        load_s = time.perf_counter() - started
    except ModelNotOnDisk as exc:
        emit(event="load_error", missing=True, error=_line(exc))
        return 2
    except Exception as exc:
        emit(event="load_error", missing=False, error=f"loading failed: {_describe(exc)}")
        return 1
    found = environment(request.hardware)
    found.update(loaded.environment)
    emit(event="loaded", load_s=load_s, environment=found)
    clock = DeviceClock(request.hardware)
    for shape in job["shapes"]:
        label = "x".join(str(d) for d in shape)
        emit(event="start", shape=label)
        try:
            result = measure(
                loaded, clock, job["batch_size"], shape, job["warmup"], job["iterations"]
            )
        except Exception as exc:
            emit(event="error", shape=label, error=_describe(exc))
            clock.reset_memory()  # an out-of-memory shape must not starve the next one
            continue
        emit(
            event="result",
            shape=label,
            samples=result.samples,
            peak_rss_mb=result.peak_rss_mb,
            peak_gpu_mb=result.peak_gpu_mb,
            details=result.details,
        )
    return 0


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
