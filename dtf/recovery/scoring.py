"""How a strategy's record becomes a score, and the exploration bonus (docs/recovery.md).

The reference (the framework dtf replaces) scores

    0.40 x success rate + 0.15 x (1 - mean recovery time / 30 s, clamped)
    + 0.15 x (1 - resource impact) + 0.15 x stability + 0.15 x task recovery rate

with 0.5 for a strategy never tried, and always takes the best. A strategy that failed
its first attempt drops to a success rate of 0 and is never chosen again, however lucky
that failure was. dtf keeps the weights but

* smooths every rate with one success and one failure of prior (Laplace): an untried
  strategy scores 0.5 as before, one failure moves it to 0.33, not to 0;
* adds an exploration bonus (UCB1) that grows with the attempts made at that level and
  shrinks with the strategy's own attempts, so each one is tried again now and then and
  the table never freezes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WEIGHTS = {"success": 0.40, "time": 0.15, "resource": 0.15, "stability": 0.15, "task": 0.15}
#: recovery time at which the time score reaches 0
TIME_SCALE_S = 30.0
#: CPU seconds + memory GiB-seconds per recovery at which the resource score reaches 0
RESOURCE_SCALE = 30.0
#: outcomes kept for the stability score
RECENT = 10
#: weight of the exploration bonus
EXPLORATION = 0.25


@dataclass
class Record:
    """A strategy's row in the performance table, for one failure class."""

    attempts: int = 0
    successes: int = 0
    recover_s: float = 0.0
    cpu_s: float = 0.0
    memory_mib_s: float = 0.0
    tests_affected: int = 0
    tests_recovered: int = 0
    recent: list[int] = field(default_factory=list)


def _smoothed(hits: float, total: float) -> float:
    return (hits + 1.0) / (total + 2.0)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def components(record: Record) -> dict[str, float]:
    """Each term of the score, in [0, 1]."""
    n = record.attempts
    if n:
        time = _clamp(1.0 - record.recover_s / n / TIME_SCALE_S)
        cost = (record.cpu_s + record.memory_mib_s / 1024.0) / n
        resource = _clamp(1.0 - cost / RESOURCE_SCALE)
    else:
        time = resource = 0.5
    return {
        "success": _smoothed(record.successes, n),
        "time": time,
        "resource": resource,
        "stability": _smoothed(sum(record.recent), len(record.recent)),
        "task": _smoothed(record.tests_recovered, record.tests_affected),
    }


def score(record: Record) -> float:
    """The weighted score, in [0, 1]."""
    return sum(WEIGHTS[name] * value for name, value in components(record).items())


def exploration_bonus(record: Record, attempts_at_level: int) -> float:
    """UCB1: sqrt(ln(1 + all attempts at this level) / (1 + this strategy's attempts))."""
    return EXPLORATION * math.sqrt(math.log(1 + attempts_at_level) / (1 + record.attempts))


def reference_score(record: Record) -> float:
    """The reference's score, kept to compare against in tests and docs."""
    if not record.attempts:
        return 0.5
    n = record.attempts
    success = record.successes / n
    time = _clamp(1.0 - record.recover_s / n / TIME_SCALE_S)
    cost = (record.cpu_s + record.memory_mib_s / 1024.0) / n
    stability = sum(record.recent) / len(record.recent) if record.recent else 0.5
    task = record.tests_recovered / record.tests_affected if record.tests_affected else 0.5
    return (
        0.40 * success
        + 0.15 * time
        + 0.15 * _clamp(1.0 - cost / RESOURCE_SCALE)
        + 0.15 * stability
        + 0.15 * task
    )
