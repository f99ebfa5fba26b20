"""Latency statistics of measured samples: mean, percentiles, throughput."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), interpolated linearly between ranks as numpy does."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


@dataclass(frozen=True)
class LatencySummary:
    """What a list of per-iteration latencies (seconds) says, in milliseconds and items/s."""

    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # items per second: batch size x iterations / measured seconds

    @classmethod
    def of(cls, samples_s: Sequence[float], batch_size: int) -> LatencySummary:
        if not samples_s:
            raise ValueError("no samples")
        total = sum(samples_s)
        return cls(
            mean_ms=total / len(samples_s) * 1000.0,
            p50_ms=percentile(samples_s, 50) * 1000.0,
            p90_ms=percentile(samples_s, 90) * 1000.0,
            p99_ms=percentile(samples_s, 99) * 1000.0,
            throughput=batch_size * len(samples_s) / total if total > 0 else math.inf,
        )
