"""Cut a queue's tests into batches: slowest first, big batches first, small ones last.

Tests are first grouped into units that stay together (a module by default,
a class scope, or every test marked with the same model); a unit longer than
a batch should be is split. Units are then taken slowest first and packed
into batches whose target duration shrinks with the work that remains
(guided self-scheduling): each batch takes its share of the remaining work
per slot, the first batches are large, the last ones small, so the last
worker to finish does not finish long after the others. Workers pull one
batch at a time (prefetch 1), so no batch waits behind a busy one; and at the
end of a run a batch hands the tests it has not started to an idle slot
(dtf/tasks/handoff.py), which covers what the estimates got wrong. No batch
aims below ``min_batch_s`` (by default ten times a batch's start-up as this
suite measured it: :func:`min_batch_seconds`), since each pays a start-up.

Two knobs override the guided sizes: ``max_batch_s`` caps a batch's expected
duration, and ``batch_count`` asks for that many batches of equal expected
duration (longest-processing-time packing). A test marked ``exclusive``
always forms a batch of its own: its worker runs nothing else meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

GROUPINGS = ("module", "file", "scope", "none")
#: Batches never aim below this (seconds): each batch pays a start-up cost.
MIN_BATCH_S = 2.0
#: A batch aims at this many times its start-up, so that start-ups stay under ~10 %.
STARTUP_RATIO = 10.0
#: How much of the remaining work per slot a batch takes (1: all of its share; the
#: tail is balanced at run time by handing off, so smaller shares only add start-ups).
SHARE_DIVISOR = 1


#: With no history, no batch aims below a slot's share of the run divided by this.
GUESSED_FLOOR_DIVISOR = 4


def min_batch_seconds(startup_s: float) -> float:
    """The smallest batch worth its start-up of ``startup_s`` seconds."""
    return max(MIN_BATCH_S, STARTUP_RATIO * startup_s)


def guessed_min_batch_seconds(total_s: float, slots: int) -> float:
    """The smallest batch of a suite with no history, where every estimate is one guess.

    Then sizes are test counts, and small last batches balance nothing (a test may take
    a millisecond or a minute) while each pays a start-up; handing off at run time
    balances the tail by what the tests took. So a first run is cut into about two
    batches per slot: half of the run, a quarter, then eighths.
    """
    return total_s / (max(1, slots) * GUESSED_FLOOR_DIVISOR)


class Schedulable(Protocol):
    nodeid: str
    path: str
    requirements: dict[str, Any]


Item = TypeVar("Item", bound=Schedulable)


def is_exclusive(item: Schedulable) -> bool:
    """Whether the test must run alone on its worker."""
    return bool((item.requirements or {}).get("exclusive"))


def unit_key(item: Schedulable, grouping: str) -> tuple[str, ...]:
    """What an item must share a batch with."""
    if is_exclusive(item):
        return ("exclusive", item.nodeid)
    model = (item.requirements or {}).get("model")
    if model:
        return ("model", str(model))
    if grouping == "none":
        return ("test", item.nodeid)
    if grouping == "scope":
        return ("scope", item.nodeid.partition("[")[0].rsplit("::", 1)[0])
    if grouping == "file":
        return ("file", item.path)
    return ("module", item.path)


def make_batches(
    items: Sequence[Item],
    slots: int,
    estimate: Callable[[Item], float] = lambda item: 1.0,
    *,
    grouping: str = "module",
    min_batch_s: float = MIN_BATCH_S,
    max_batch_s: float | None = None,
    batch_count: int | None = None,
) -> list[list[Item]]:
    """Batches for ``slots`` parallel worker slots, in the order they should be sent."""
    if not items:
        return []
    slots = max(1, slots)
    durations = {item.nodeid: max(estimate(item), 1e-6) for item in items}
    total = sum(durations.values())
    # A module may be split so that no unit alone decides when the run ends;
    # a file, a scope or a model's tests never are.
    limit = total / (batch_count or slots * SHARE_DIVISOR)
    if max_batch_s is not None:
        limit = min(limit, max_batch_s)
    units = [
        piece
        for key, unit in _units(items, grouping)
        for piece in (_split(unit, durations, limit) if key[0] == "module" else [unit])
    ]
    units.sort(key=lambda unit: -_seconds(unit, durations))
    alone = [unit for unit in units if is_exclusive(unit[0])]
    shared = [unit for unit in units if not is_exclusive(unit[0])]
    if batch_count is not None:
        packed = _pack(shared, durations, max(1, batch_count - len(alone)))
    else:
        packed = _guided(shared, durations, slots, total, min_batch_s, max_batch_s)
    # Exclusive batches go first: each needs a whole worker, which is easiest
    # to have at the start, while the other workers take the rest of the run.
    return [*alone, *sorted(packed, key=lambda batch: -_seconds(batch, durations))]


def _seconds(items: Sequence[Schedulable], durations: dict[str, float]) -> float:
    return sum(durations[i.nodeid] for i in items)


def _guided(
    units: list[list[Item]],
    durations: dict[str, float],
    slots: int,
    total: float,
    min_batch_s: float,
    max_batch_s: float | None,
) -> list[list[Item]]:
    """Slowest units first; each batch takes a shrinking share of the work that remains."""
    floor = min(min_batch_s, total / slots)
    batches: list[list[Item]] = []
    remaining = total
    current: list[Item] = []
    current_s = 0.0
    for unit in units:
        unit_s = _seconds(unit, durations)
        target = max(remaining / (slots * SHARE_DIVISOR), floor)
        too_long = max_batch_s is not None and current_s + unit_s > max_batch_s
        # Closed before a unit that would overshoot the target more than it is short of it.
        if current and (too_long or current_s + unit_s - target > target - current_s):
            batches.append(current)
            remaining -= current_s
            current, current_s = [], 0.0
            target = max(remaining / (slots * SHARE_DIVISOR), floor)
        current.extend(unit)
        current_s += unit_s
        if current_s >= target:
            batches.append(current)
            remaining -= current_s
            current, current_s = [], 0.0
    if current:
        batches.append(current)
    return batches


def _pack(units: list[list[Item]], durations: dict[str, float], count: int) -> list[list[Item]]:
    """``count`` batches (fewer if there are fewer units), the slowest unit into the lightest."""
    bins: list[tuple[float, list[Item]]] = [(0.0, []) for _ in range(min(count, len(units)))]
    for unit in units:  # already slowest first
        lightest = min(range(len(bins)), key=lambda i: bins[i][0])
        seconds, batch = bins[lightest]
        bins[lightest] = (seconds + _seconds(unit, durations), batch + unit)
    return [batch for _, batch in bins]


def _units(items: Sequence[Item], grouping: str) -> list[tuple[tuple[str, ...], list[Item]]]:
    units: dict[tuple[str, ...], list[Item]] = {}
    for item in items:
        units.setdefault(unit_key(item, grouping), []).append(item)
    return list(units.items())


def _split(unit: list[Item], durations: dict[str, float], limit: float) -> list[list[Item]]:
    """Consecutive pieces of ``unit``, each at most ``limit`` long (one test at least)."""
    if _seconds(unit, durations) <= limit or len(unit) == 1:
        return [unit]
    pieces: list[list[Item]] = [[]]
    size = 0.0
    for item in unit:
        if pieces[-1] and size + durations[item.nodeid] > limit:
            pieces.append([])
            size = 0.0
        pieces[-1].append(item)
        size += durations[item.nodeid]
    return pieces
