"""The performance table as rows for ``dtf recovery stats``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.db.models import RecoveryStat
from dtf.recovery.scoring import components, reference_score, score
from dtf.recovery.strategies import LEVEL_NAMES
from dtf.recovery.table import record_of


def stats_rows(session: Session) -> list[dict[str, Any]]:
    """Every (failure class, strategy) with its counts, means and score, by class and level."""
    rows = []
    for stat in session.scalars(
        select(RecoveryStat).order_by(
            RecoveryStat.failure_class, RecoveryStat.level, RecoveryStat.strategy
        )
    ):
        record = record_of(stat)
        n = max(1, stat.attempts)
        rows.append(
            {
                "failure_class": stat.failure_class,
                "strategy": stat.strategy,
                "level": stat.level,
                "level_name": LEVEL_NAMES[stat.level],
                "attempts": stat.attempts,
                "successes": stat.successes,
                "mean_recover_s": stat.recover_s / n,
                "cpu_s": stat.cpu_s,
                "memory_mib_s": stat.memory_mib_s,
                "tests_affected": stat.tests_affected,
                "tests_recovered": stat.tests_recovered,
                "score": round(score(record), 4),
                "reference_score": round(reference_score(record), 4),
                "components": {k: round(v, 4) for k, v in components(record).items()},
            }
        )
    return rows
