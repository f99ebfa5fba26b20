"""Which strategy to use: the start level of a failure class, escalation, and the choice.

A failure starts at level 1 (or a class's documented minimum, see ``MIN_START_LEVEL``)
and moves up one level each time the strategy chosen for it fails. A level is skipped
when the table shows it never helps the class (``HOPELESS_AFTER`` attempts at every
candidate, no success), and when it has no strategy that applies here. Within a level
the strategy with the best score plus exploration bonus wins (see ``scoring``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dtf.recovery import strategies as st
from dtf.recovery.scoring import Record, exploration_bonus, score

#: attempts without a success after which a level no longer counts for a class
HOPELESS_AFTER = 5

Table = Mapping[tuple[str, str], Record]


def start_level(failure_class: str, table: Table, context: str, culprit_known: bool = True) -> int:
    """The lowest level worth trying for ``failure_class``."""
    level = st.MIN_START_LEVEL.get((failure_class, context), 1)
    while level < st.CRITICAL:
        found = st.candidates(failure_class, level, context, culprit_known)
        records = [table.get((failure_class, s.name), Record()) for s in found]
        hopeless = records and all(
            r.attempts >= HOPELESS_AFTER and r.successes == 0 for r in records
        )
        if found and not hopeless:
            return level
        level += 1
    return st.CRITICAL


def choose(
    failure_class: str,
    level: int,
    table: Table,
    context: str,
    *,
    culprit_known: bool = True,
    applicable: Callable[[st.Strategy], bool] = lambda strategy: True,
) -> st.Strategy:
    """The strategy to use at ``level`` or, when none applies there, the next level up."""
    for current in range(max(1, level), st.CRITICAL + 1):
        found = [
            s
            for s in st.candidates(failure_class, current, context, culprit_known)
            if applicable(s)
        ]
        if found:
            return best(failure_class, found, table)
    return st.BY_NAME["give_up"]


def best(failure_class: str, found: list[st.Strategy], table: Table) -> st.Strategy:
    """Highest score + exploration bonus; ties go to the order of ``STRATEGIES``."""
    records = {s.name: table.get((failure_class, s.name), Record()) for s in found}
    at_level = sum(r.attempts for r in records.values())
    return max(
        found,
        key=lambda s: score(records[s.name]) + exploration_bonus(records[s.name], at_level),
    )


def backoff_s(retry: int, base_delay: float, *, rand: Callable[[], float]) -> float:
    """Seconds before retry number ``retry`` (1, 2, ..): ``base_delay`` plus 0.5 s x 2^(n-1)
    with full jitter, at most 30 s."""
    return min(30.0, base_delay + rand() * 0.5 * 2 ** (max(1, retry) - 1))
