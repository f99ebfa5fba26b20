"""Timing and memory of one measurement, inside the benchmark's child process.

On a GPU each timed call sits between two device synchronisations, so work
the call only queued is counted; CUDA events time the same span on the
device and are recorded beside it.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtf.benchmarking.contract import Loaded

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Measurement:
    samples: list[float]  # seconds per iteration
    peak_rss_mb: float
    peak_gpu_mb: float | None = None
    warmup_s: float = 0.0  # the untimed calls before the samples
    details: dict[str, Any] = field(default_factory=dict)


class DeviceClock:
    """Synchronisation (and CUDA events) for the device a benchmark runs on."""

    def __init__(self, hardware: str) -> None:
        torch = sys.modules.get("torch")  # only a run that loaded torch can have queued work
        self.torch = torch
        self.cuda = bool(
            torch is not None and hardware in ("cuda", "rocm") and torch.cuda.is_available()
        )
        mps = torch is not None and hardware == "mps" and hasattr(torch, "mps")
        self.sync: Callable[[], None] = (
            torch.cuda.synchronize if self.cuda else torch.mps.synchronize if mps else _nothing
        )

    def reset_memory(self) -> None:
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_memory_mb(self) -> float | None:
        return self.torch.cuda.max_memory_allocated() / 2**20 if self.cuda else None


def _nothing() -> None:
    return None


def measure(
    loaded: Loaded, clock: DeviceClock, batch_size: int, shape: list[int], warmup: int,
    iterations: int,
) -> Measurement:  # fmt: skip
    """Warm up, then time ``iterations`` calls one by one."""
    inputs = loaded.make_inputs(batch_size, shape)
    clock.reset_memory()
    reset_peak_rss()
    began = time.perf_counter()
    for _ in range(warmup):
        loaded.run(inputs)
    clock.sync()
    warmup_s = time.perf_counter() - began
    samples: list[float] = []
    events: list[tuple[Any, Any]] = []
    for _ in range(iterations):
        if clock.cuda:
            start, end = (clock.torch.cuda.Event(enable_timing=True) for _ in range(2))
            start.record()
        began = time.perf_counter_ns()
        loaded.run(inputs)
        if clock.cuda:
            end.record()
            events.append((start, end))
        clock.sync()
        samples.append((time.perf_counter_ns() - began) / 1e9)
    details: dict[str, Any] = {}
    if events:
        device_ms = [start.elapsed_time(end) for start, end in events]
        details["cuda_event_mean_ms"] = sum(device_ms) / len(device_ms)
    return Measurement(
        samples=samples,
        peak_rss_mb=peak_rss_mb(),
        peak_gpu_mb=clock.peak_memory_mb(),
        warmup_s=warmup_s,
        details=details,
    )


def reset_peak_rss() -> bool:
    """Start the high-water mark of resident memory afresh (Linux); False where it cannot."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (since the last reset on Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS
