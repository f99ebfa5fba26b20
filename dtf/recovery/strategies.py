"""Recovery strategies by escalation level, and the failure classes each one can treat.

Levels are named as in the framework dtf replaces: 1 basic, 2 enhanced, 3 component,
4 system, 5 critical. ``context`` says who carries a strategy out: ``test`` strategies run
inside a batch, in :mod:`dtf.executor.pytest_runner`, when one test crashed, hung, ran
out of memory or was killed from outside; ``batch`` strategies move the whole batch with
Celery's ``retry`` / ``replace`` (:mod:`dtf.tasks.execute`) or are sent by the reconciler.

A ``killed`` child (killed from outside, not by dtf) is never blamed on its test: no
isolation, no bisecting. Its tests run again here (``retry_test``, ``retry_rest``), then
``move_test`` leaves them to the batch-level recovery, which sends them to another
worker (``reassign_worker``) or hardware, never in place and never split.
"""

from __future__ import annotations

from dataclasses import dataclass

from dtf.recovery import classes as fc

LEVEL_NAMES = {1: "basic", 2: "enhanced", 3: "component", 4: "system", 5: "critical"}
CRITICAL = 5


@dataclass(frozen=True)
class Strategy:
    name: str
    level: int
    context: str  # "test" | "batch"
    classes: frozenset[str]
    description: str
    #: test strategies: True when the test that broke the child must be known, False
    #: when it must be unknown (bisect), None when either will do
    needs_culprit: bool | None = True

    def treats(self, failure_class: str) -> bool:
        return failure_class in self.classes


_BATCH_CLASSES = frozenset(
    {
        fc.WORKER_LOST,
        fc.ENV_BROKEN,
        fc.BUNDLE_UNAVAILABLE,
        fc.DB_UNREACHABLE,
        fc.BROKER_UNREACHABLE,
        fc.BATCH_ERROR,
        fc.HANG,
        fc.OOM,
        fc.KILLED,
    }
)

STRATEGIES: tuple[Strategy, ...] = (
    # 1 basic
    Strategy(
        "retry_test",
        1,
        "test",
        frozenset({fc.CRASH, fc.OOM, fc.KILLED}),
        "run the test again alone in a fresh child, after back-off with jitter",
    ),
    Strategy(
        "retry_rest",
        1,
        "test",
        frozenset({fc.KILLED}),
        "killed from outside while no test ran: the tests left again in one fresh child",
        needs_culprit=False,
    ),
    Strategy(
        "retry_in_place",
        1,
        "batch",
        _BATCH_CLASSES - {fc.HANG, fc.OOM, fc.KILLED},
        "Celery retry on the same queue, after back-off with jitter",
    ),
    # 2 enhanced
    Strategy(
        "retry_test_spawned",
        2,
        "test",
        frozenset({fc.CRASH}),
        "run the test again in a new interpreter instead of a fork of the worker",
    ),
    Strategy(
        "retry_smaller_batch",
        2,
        "batch",
        frozenset({fc.WORKER_LOST, fc.BATCH_ERROR, fc.HANG, fc.OOM}),
        "split what is left of the batch in two and replace the task by the halves",
    ),
    # 3 component
    Strategy(
        "isolate_test",
        3,
        "test",
        frozenset({fc.CRASH, fc.HANG, fc.OOM}),
        "report the test as crashed / timed_out / out_of_memory, run the rest without it",
    ),
    Strategy(
        "bisect",
        3,
        "test",
        frozenset({fc.CRASH, fc.OOM}),
        "the culprit is unknown: run each half of the tests left in a child of its own",
        needs_culprit=False,
    ),
    Strategy(
        "reassign_worker",
        3,
        "batch",
        _BATCH_CLASSES - {fc.DB_UNREACHABLE, fc.BROKER_UNREACHABLE},
        "Celery retry on the own queue of another live worker of the same hardware",
    ),
    Strategy(
        "move_test",
        3,
        "test",
        frozenset({fc.KILLED}),
        "leave the tests to the batch's recovery, which sends them to another worker",
        needs_culprit=None,
    ),
    # 4 system
    Strategy(
        "other_hardware",
        4,
        "batch",
        _BATCH_CLASSES - {fc.DB_UNREACHABLE, fc.BROKER_UNREACHABLE},
        "Celery retry on the queue of another hardware kind the tests accept",
    ),
    Strategy(
        "quarantine_worker",
        4,
        "batch",
        frozenset({fc.WORKER_LOST, fc.ENV_BROKEN, fc.BUNDLE_UNAVAILABLE, fc.BATCH_ERROR}),
        "quarantine the worker that keeps breaking (it stops taking work), retry elsewhere",
    ),
    # 5 critical
    Strategy(
        "give_up",
        5,
        "any",
        frozenset(fc.FAILURE_CLASSES),
        "record the tests left as infra_error and notify (dtf_recovery_failed hook)",
        needs_culprit=None,
    ),
)

BY_NAME = {s.name: s for s in STRATEGIES}

#: Levels a class never starts below in a context, whatever the table says: a hang does
#: not cure itself by running the same again. A hung test is isolated at once (running
#: it again with a longer timeout made it cost three times its timeout); a hung batch
#: is split first.
MIN_START_LEVEL = {(fc.HANG, "test"): 3, (fc.HANG, "batch"): 2}


def candidates(failure_class: str, level: int, context: str, culprit_known: bool = True):
    """Strategies of ``level`` that treat ``failure_class`` in ``context``."""
    return [
        s
        for s in STRATEGIES
        if s.level == level
        and s.context in (context, "any")
        and s.treats(failure_class)
        and (s.needs_culprit is None or s.needs_culprit == culprit_known)
    ]
