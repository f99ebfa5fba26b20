"""What a recovery costs: CPU seconds and memory (MiB x seconds), measured with psutil."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Cost:
    seconds: float
    cpu_s: float
    memory_mib_s: float


class ResourceMeter:
    """CPU time of this process and its reaped children, and its resident memory, from
    ``start`` to ``stop``.

    Children (the pytest children a recovery starts) count once they are reaped, which
    the runner does before a recovery ends. Memory is the mean of the resident sizes at
    start and stop times the elapsed time.
    """

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._started = time.monotonic()
        self._cpu = self._cpu_now()
        self._rss = self._rss_now()

    def _cpu_now(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def _rss_now(self) -> float:
        try:
            return self._process.memory_info().rss / _MIB
        except psutil.Error:
            return 0.0

    def stop(self) -> Cost:
        elapsed = max(0.0, time.monotonic() - self._started)
        cpu = max(0.0, self._cpu_now() - self._cpu)
        mean_rss = (self._rss + self._rss_now()) / 2
        return Cost(seconds=elapsed, cpu_s=cpu, memory_mib_s=mean_rss * elapsed)
