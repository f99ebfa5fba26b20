"""Split a task's test items into batches: whole modules where they fit, balanced by count."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import groupby
from typing import Protocol, TypeVar


class HasPath(Protocol):
    path: str


Item = TypeVar("Item", bound=HasPath)

#: Batches per worker slot: more than one, so a slot that finishes early takes more work.
BATCHES_PER_SLOT = 3


def make_batches(items: Sequence[Item], slots: int) -> list[list[Item]]:
    """Group ``items`` into at most ``slots * BATCHES_PER_SLOT`` batches of similar size.

    Tests of one module stay together unless the module alone is larger than a
    batch should be; the order of tests inside a module is kept.
    """
    if not items:
        return []
    target = min(len(items), max(1, slots) * BATCHES_PER_SLOT)
    limit = math.ceil(len(items) / target)
    chunks: list[list[Item]] = []
    for _path, module in groupby(items, key=lambda item: item.path):
        tests = list(module)
        chunks.extend(tests[i : i + limit] for i in range(0, len(tests), limit))
    bins: list[list[Item]] = [[] for _ in range(min(target, len(chunks)))]
    for chunk in sorted(chunks, key=len, reverse=True):
        min(bins, key=len).extend(chunk)
    return [b for b in bins if b]
