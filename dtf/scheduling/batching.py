"""Cut a queue's tests into batches: slowest first, big batches first, small ones last.

Tests are first grouped into units that stay together (a module by default,
a class scope, or every test marked with the same model); a unit longer than
a batch should be is split. Units are then taken slowest first and packed
into batches whose target duration shrinks with the work that remains
(guided self-scheduling): the first batches are large, the last ones small,
so the last worker to finish does not finish long after the others. Workers
pull one batch at a time (prefetch 1), so no batch waits behind a busy one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

GROUPINGS = ("module", "file", "scope", "none")
#: Batches never aim below this (seconds): each batch pays a start-up cost.
MIN_BATCH_S = 2.0
#: How much of the remaining work per slot a batch takes (2: half of its share).
SHARE_DIVISOR = 2


class Schedulable(Protocol):
    nodeid: str
    path: str
    requirements: dict[str, Any]


Item = TypeVar("Item", bound=Schedulable)


def unit_key(item: Schedulable, grouping: str) -> tuple[str, ...]:
    """What an item must share a batch with."""
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
) -> list[list[Item]]:
    """Batches for ``slots`` parallel worker slots, in the order they should be sent."""
    if not items:
        return []
    slots = max(1, slots)
    durations = {item.nodeid: max(estimate(item), 1e-6) for item in items}
    total = sum(durations.values())
    # A module may be split so that no unit alone decides when the run ends;
    # a file, a scope or a model's tests never are.
    limit = total / slots / SHARE_DIVISOR
    units = [
        piece
        for key, unit in _units(items, grouping)
        for piece in (_split(unit, durations, limit) if key[0] == "module" else [unit])
    ]
    units.sort(key=lambda unit: -sum(durations[i.nodeid] for i in unit))

    floor = min(min_batch_s, total / slots)
    batches: list[list[Item]] = []
    remaining = total
    current: list[Item] = []
    current_s = 0.0
    for unit in units:
        unit_s = sum(durations[i.nodeid] for i in unit)
        current.extend(unit)
        current_s += unit_s
        if current_s >= max(remaining / (slots * SHARE_DIVISOR), floor):
            batches.append(current)
            remaining -= current_s
            current, current_s = [], 0.0
    if current:
        batches.append(current)
    return batches


def _units(items: Sequence[Item], grouping: str) -> list[tuple[tuple[str, ...], list[Item]]]:
    units: dict[tuple[str, ...], list[Item]] = {}
    for item in items:
        units.setdefault(unit_key(item, grouping), []).append(item)
    return list(units.items())


def _split(unit: list[Item], durations: dict[str, float], limit: float) -> list[list[Item]]:
    """Consecutive pieces of ``unit``, each at most ``limit`` long (one test at least)."""
    if sum(durations[i.nodeid] for i in unit) <= limit or len(unit) == 1:
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
