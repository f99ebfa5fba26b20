"""Recovery decisions against the database: the runner's hooks and the batch-level plan.

The policy (:mod:`dtf.recovery.policy`) is pure; this module reads the performance
table, checks the budgets, records each recovery as an event, folds its outcome into the
table and fires the plugin hooks. Celery's side (``retry``/``replace``) is in
:mod:`dtf.tasks.execute`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from sqlalchemy import select, update

from dtf.config import worker_queue
from dtf.db.models import Attempt, Batch, RecoveryEvent, TestItem, Worker, utcnow
from dtf.db.session import session_scope
from dtf.executor.pytest_runner import Decision, Incident, RecoveryHooks
from dtf.recovery import classes as fc
from dtf.recovery import policy
from dtf.recovery import strategies as st
from dtf.recovery import table as tb
from dtf.recovery.resources import Cost, ResourceMeter

logger = logging.getLogger(__name__)

_TEST_ACTIONS = {
    "retry_test": Decision("retry"),
    "retry_test_spawned": Decision("retry", spawn=True),
    "retry_rest": Decision("retry"),
    "isolate_test": Decision("isolate"),
    "bisect": Decision("bisect"),
    "give_up": Decision("give_up"),
}


@dataclass
class _Open:
    event_id: int
    meter: ResourceMeter
    strategy: str
    nodeid: str | None


class TestRecovery(RecoveryHooks):
    """The runner's hooks for one batch attempt, backed by the policy and the table.

    Failures of the batch's environment (``env_broken``) are deferred to the batch-level
    recovery, which moves the tests to another worker; so are tests killed from outside
    (``killed``) once retrying them here did not help (``move_test``), if another worker
    or hardware can take them: the batch-level recovery records that move.
    """

    __test__ = False

    def __init__(self, db_url: str, work, worker: str | None, rand=random.random) -> None:
        self.db_url = db_url
        self.work = work
        self.worker = worker
        self.rand = rand
        #: (nodeid, failure class) -> level of its last recovery
        self.levels: dict[tuple[str | None, str], int] = {}

    def decide(self, incident: Incident) -> Decision:
        if incident.failure_class == fc.ENV_BROKEN:
            return Decision("defer")
        try:
            return self._decide(incident)
        except Exception:
            # Recovery must never lose a result: without the database, isolate as before.
            logger.exception("recovery could not decide on %s; isolating", incident.nodeid)
            return RecoveryHooks().decide(incident)

    def _decide(self, incident: Incident) -> Decision:
        culprit = incident.nodeid
        with session_scope(self.db_url) as session:
            table = tb.load_table(session)
            cls = incident.failure_class
            known = culprit is not None
            spent_run = tb.run_recoveries(session, self.work.run_id)
            item = None
            if known and culprit in self.work.items:
                item = session.get(TestItem, self.work.items[culprit])
            spent_test = item.retries if item is not None else incident.retries
            key = (culprit, cls)
            if key in self.levels:
                level = self.levels[key] + 1
            else:
                level = policy.start_level(cls, table, "test", known)
            if spent_run >= self.work.run_budget:
                strategy = st.BY_NAME["give_up"]
                why = f"the run's retry budget ({self.work.run_budget}) is spent"
            elif known and spent_test >= self.work.max_retries:
                # A test killed from outside is not isolated: it did not fault.
                isolate = st.BY_NAME["isolate_test"]
                strategy = isolate if isolate.treats(cls) else st.BY_NAME["give_up"]
                why = f"the test's retry budget ({self.work.max_retries}) is spent"
            else:
                strategy = policy.choose(
                    cls, level, table, "test", culprit_known=known, applicable=self._applicable
                )
                why = ""
            if known or strategy.name.startswith("retry"):
                # Unknown culprits are tracked only for retries (escalate, never loop);
                # bisecting repeats at its level for each half.
                self.levels[key] = strategy.level
            if strategy.name == "move_test":
                # No event here: the batch-level recovery records the move and its outcome.
                return Decision("defer", strategy=strategy.name)
            if item is not None and strategy.name.startswith("retry"):
                item.retries += 1
            event = tb.start_event(
                session,
                run_id=self.work.run_id,
                failure_class=cls,
                strategy=strategy.name,
                batch_id=self.work.batch_id or None,
                nodeid=culprit or f"{len(incident.nodeids)} tests",
                worker=self.worker,
                detail="; ".join(p for p in (why, incident.detail) if p),
                tests=len(incident.nodeids),
            )
            payload = tb.event_dict(event)
        tb.fire("dtf_recovery_started", recovery=payload)
        template = _TEST_ACTIONS[strategy.name]
        delay = 0.0
        if template.action == "retry":
            delay = policy.backoff_s(
                self.levels.get((culprit, incident.failure_class), 1),
                self.work.retry_delay_s,
                rand=self.rand,
            )
        return Decision(
            template.action,
            strategy=strategy.name,
            delay=delay,
            spawn=template.spawn,
            token=_Open(event.id, ResourceMeter(), strategy.name, culprit),
        )

    def _applicable(self, strategy: st.Strategy) -> bool:
        """``move_test`` applies while another worker or hardware could take the tests."""
        if strategy.name != "move_test":
            return True
        from dtf.submission import live_workers

        failed = {self.worker} if self.worker else set()
        targets = _targets(self.work, live_workers(self.db_url), failed, self.worker)
        return "reassign_worker" in targets or "other_hardware" in targets

    def resolved(self, decision: Decision, ok: bool) -> None:
        opened = decision.token
        if not isinstance(opened, _Open):
            return
        try:
            finish(self.db_url, opened.event_id, ok, opened.meter.stop())
        except Exception:
            logger.exception("could not record the end of recovery %s", opened.event_id)


def finish(db_url: str, event_id: int, ok: bool, cost: Cost | None) -> None:
    """Close one recovery event and fire its hook."""
    with session_scope(db_url) as session:
        event = session.get(RecoveryEvent, event_id)
        if event is None or not tb.finish_event(session, event, succeeded=ok, cost=cost):
            return
        session.refresh(event)
        payload = tb.event_dict(event)
    hook = "dtf_recovery_completed" if ok else "dtf_recovery_failed"
    tb.fire(hook, recovery=payload)


@dataclass
class BatchPlan:
    """What to do with a batch that failed as a whole."""

    strategy: str
    event_id: int
    queue: str | None = None  # where to send it again
    hardware: str | None = None
    delay: float = 0.0
    reason: str = ""


def plan_batch_recovery(
    db_url: str,
    work,
    failure_class: str,
    detail: str,
    *,
    failed_worker: str | None,
    live: list,
    rand=random.random,
    exclude: frozenset[str] | set[str] = frozenset(),
) -> BatchPlan:
    """Close the batch's open recovery as failed, choose the next strategy, record it.

    ``live``: the live workers (``LiveWorker``) that could take the batch.
    """
    with session_scope(db_url) as session:
        for old in tb.open_events(session, work.batch_id):
            if old.nodeid is None:
                tb.finish_event(session, old, succeeded=False)
        table = tb.load_table(session)
        failed_workers = set(
            session.scalars(
                select(Attempt.worker).where(
                    Attempt.batch_id == work.batch_id,
                    Attempt.status.in_(("lost", "broken", "retried")),
                )
            )
        ) | ({failed_worker} if failed_worker else set())
        level = max(
            policy.start_level(failure_class, table, "batch"),
            tb.last_batch_level(session, work.batch_id) + 1,
        )
        spent_batch = tb.batch_recoveries(session, work.batch_id)
        spent_run = tb.run_recoveries(session, work.run_id)
        targets = {
            name: target
            for name, target in _targets(work, live, failed_workers, failed_worker).items()
            if name not in exclude
        }
        why = ""
        if spent_run >= work.run_budget:
            strategy = st.BY_NAME["give_up"]
            why = f"the run's retry budget ({work.run_budget}) is spent"
        elif spent_batch >= work.max_retries:
            strategy = st.BY_NAME["give_up"]
            why = f"the batch's retry budget ({work.max_retries}) is spent"
        else:
            strategy = policy.choose(
                failure_class,
                level,
                table,
                "batch",
                applicable=lambda s: s.name in targets or s.name == "give_up",
            )
        queue, hardware = targets.get(strategy.name, (None, None))
        event = tb.start_event(
            session,
            run_id=work.run_id,
            failure_class=failure_class,
            strategy=strategy.name,
            batch_id=work.batch_id,
            worker=failed_worker,
            detail="; ".join(p for p in (why, detail) if p),
            tests=len(work.items),
        )
        payload = tb.event_dict(event)
    tb.fire("dtf_recovery_started", recovery=payload)
    delay = 0.0
    if strategy.name == "retry_in_place":
        delay = policy.backoff_s(spent_batch + 1, work.retry_delay_s, rand=rand)
    return BatchPlan(strategy.name, event.id, queue, hardware, delay, why or detail)


def _targets(work, live, failed_workers: set, failed_worker: str | None) -> dict:
    """Strategy name -> (queue, hardware) for the batch strategies that can apply now."""
    usable = [w for w in live if w.hostname not in failed_workers]
    hardware = work.hardware or (work.hardware_kinds or ["cpu"])[0]
    same_kind = [w for w in usable if hardware in w.healthy_queues]
    targets = {"retry_in_place": (work.queue, work.hardware)}
    if len(work.items) >= 2:
        targets["retry_smaller_batch"] = (work.queue, work.hardware)
    if same_kind:
        other = min(same_kind, key=lambda w: (w.load, w.hostname))
        targets["reassign_worker"] = (worker_queue(other.hostname), hardware)
        if failed_worker:
            targets["quarantine_worker"] = (hardware, hardware)
    for kind in work.hardware_kinds:
        if kind != hardware and any(kind in w.healthy_queues for w in usable):
            targets["other_hardware"] = (kind, kind)
            break
    return targets


def close_batch_events(db_url: str, batch_id: str, ok: bool, cost: Cost | None) -> None:
    """The batch finished (or was given up on): close its open batch-level recoveries."""
    with session_scope(db_url) as session:
        ids = [e.id for e in tb.open_events(session, batch_id) if e.nodeid is None]
    for event_id in ids:
        finish(db_url, event_id, ok, cost)


def quarantine(db_url: str, hostname: str, reason: str) -> None:
    """Level 4: the worker takes no more work (its heartbeat stops its consumers)."""
    with session_scope(db_url) as session:
        session.execute(
            update(Worker)
            .where(Worker.hostname == hostname, Worker.quarantined_at.is_(None))
            .values(quarantined_at=utcnow(), quarantine_reason=reason[:2000])
        )
    tb.fire("dtf_worker_failed", worker={"hostname": hostname, "quarantined": True,
                                         "reason": reason})  # fmt: skip


def move_batch(db_url: str, batch_id: str, queue: str, hardware: str | None) -> None:
    """Record where a batch is sent again (another worker's queue, another hardware)."""
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is not None:
            batch.queue = queue
            if hardware:
                batch.hardware = hardware
