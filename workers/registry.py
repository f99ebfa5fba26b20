"""The worker's row in the ``workers`` table, and the heartbeat that keeps it current.

When the worker is ready it writes its row (state online); a daemon thread then
rewrites ``last_seen``, ``active_tasks`` and ``queue_health`` every
``DTF_HEARTBEAT_INTERVAL`` seconds (default 10), and at once when a health check
changes its mind. On shutdown the row says offline. A worker whose heartbeat
stops shows as lost in ``dtf workers``. The database being unreachable never
stops the worker: the failure is logged and the next beat tries again.

The same thread does recovery's worker-side chores (docs/recovery.md): it runs the
reconciler every ``DTF_RECONCILE_INTERVAL`` seconds, stops consuming the hardware queues
while the worker is quarantined (and takes them back when it is released), and notes when
the broker stops and starts answering (``broker_unreachable`` in the performance table).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import dtf
from dtf.db.models import Worker, utcnow
from dtf.db.session import session_scope
from dtf.plugins.worker import worker_event
from dtf.worker_status import LOST_AFTER_BEATS

logger = logging.getLogger(__name__)


def heartbeat_interval(env: Mapping[str, str] | None = None) -> float:
    """Seconds between beats: ``DTF_HEARTBEAT_INTERVAL``, default 5 (a worker is lost
    after three missed beats, and its batches are sent again at the next pass)."""
    return float((os.environ if env is None else env).get("DTF_HEARTBEAT_INTERVAL") or 5.0)


class Registry:
    """Writes one worker's row; ``start`` on ready, ``stop`` on shutdown."""

    def __init__(
        self,
        database_url: str,
        *,
        hostname: str,
        queues: list[str],
        inventory: dict[str, Any],
        concurrency: int,
        interval: float,
        active: Callable[[], int] = lambda: 0,
    ) -> None:
        self.database_url = database_url
        self.fields = {
            "hostname": hostname,
            "queues": list(queues),
            "inventory": inventory,
            "concurrency": concurrency,
            "version": dtf.__version__,
            "pid": os.getpid(),
            "heartbeat_interval": interval,
            "started_at": utcnow(),
        }
        self.interval = interval
        self.active = active
        self.queue_health: dict[str, dict] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing = False
        #: when this worker's own registry writes last came back after failing
        self._writes_back_at = 0.0
        self.quarantined = False
        self._next_reconcile = 0.0
        self._registered = False

    def start(self) -> None:
        """Start the heartbeat: it writes the row (online) at once, then every interval."""
        self._thread = threading.Thread(target=self._beat, name="dtf-heartbeat", daemon=True)
        self._thread.start()

    def set_health(self, queue: str, entry: dict) -> None:
        """Record a check's result; a change is written at once."""
        old = self.queue_health.get(queue)
        self.queue_health[queue] = entry
        if old is None or (old["ok"], old["reason"]) != (entry["ok"], entry["reason"]):
            self._wake.set()
        if (old is None or old["ok"]) != entry["ok"]:
            hook = "dtf_worker_recovered" if entry["ok"] else "dtf_worker_failed"
            worker_event(hook, self.fields, "online", queue=queue, reason=entry["reason"])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the heartbeat and write state offline, waiting at most ``timeout`` seconds."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        # In a thread of its own: a database that does not answer must not hold up shutdown.
        writer = threading.Thread(target=self.write, args=("offline",), daemon=True)
        writer.start()
        writer.join(timeout)

    def _beat(self) -> None:
        while not self._stopping.is_set():
            if self.write("online"):
                self._chores()
            self._wake.wait(self.interval)
            self._wake.clear()

    def _chores(self) -> None:
        for chore in (self._check_broker, self._reconcile):
            try:
                chore()
            except Exception:
                logger.exception("dtf: %s failed", chore.__name__)

    def _reconcile(self) -> None:
        from dtf.recovery.reconciler import reconcile, reconcile_interval

        if time.monotonic() < self._next_reconcile:
            return
        self._next_reconcile = time.monotonic() + reconcile_interval(self.interval)
        # Right after our own database outage every worker's beat looks stale: theirs
        # failed too. Judge none until they had three beats to catch up.
        judge = time.monotonic() - self._writes_back_at > LOST_AFTER_BEATS * self.interval
        done = reconcile(self.database_url, judge_workers=judge)
        if any(done.values()):
            logger.warning("dtf: reconciler: %s", done)

    def _check_broker(self) -> None:
        from celery import current_app
        from dtf.workers.broker_watch import outage

        try:
            with current_app.connection() as connection:  # a new one: a pooled one may be stale
                connection.connect()  # once: retrying here would hide a short outage
                client = getattr(connection.default_channel, "client", None)
                if client is not None and hasattr(client, "ping"):
                    client.ping()  # Redis connects lazily: ask it something
        except Exception as exc:
            outage.down(str(exc))
            return
        outage.up()

    def _apply_quarantine(self, quarantined: bool, reason: str | None) -> None:
        """Stop (or resume) consuming the hardware queues; running batches finish."""
        if quarantined == self.quarantined:
            return
        self.quarantined = quarantined
        from celery import current_app

        hostname = self.fields["hostname"]
        for queue in self.fields["queues"]:
            if quarantined:
                current_app.control.cancel_consumer(queue, destination=[hostname])
            else:
                current_app.control.add_consumer(queue, destination=[hostname])
        if quarantined:
            logger.warning("dtf: quarantined, not taking work: %s", reason)
        else:
            logger.info("dtf: released from quarantine, taking work again")

    def write(self, state: str) -> bool:
        """Upsert the row with ``state``; logs instead of raising. True when written."""
        with self._lock:
            if state == "online" and self._stopping.is_set():
                return False  # a late beat must not undo "offline"
            try:
                with session_scope(self.database_url) as session:
                    row = session.get(Worker, self.fields["hostname"])
                    if row is None:
                        row = Worker(hostname=self.fields["hostname"])
                        session.add(row)
                    for name, value in self.fields.items():
                        setattr(row, name, value)
                    row.state = state
                    row.active_tasks = self.active() if state == "online" else 0
                    row.queue_health = dict(self.queue_health)
                    row.last_seen = utcnow()
                    quarantine = (row.quarantined_at is not None, row.quarantine_reason)
            except Exception as exc:
                self._report(exc)
                return False
        if self._failing:
            logger.info("dtf: worker registry reachable again")
            self._failing = False
            self._writes_back_at = time.monotonic()
        if state == "online":
            try:
                self._apply_quarantine(*quarantine)
            except Exception:
                logger.exception("dtf: could not apply the quarantine")
        if state == "offline":
            worker_event("dtf_worker_disconnected", self.fields, state)
        elif not self._registered:
            self._registered = True
            worker_event("dtf_worker_registered", self.fields, state)
        return True

    def _report(self, exc: Exception) -> None:
        line = " ".join(str(exc).split())[:500]
        if not self._failing:
            logger.warning("dtf: cannot update the worker registry (will retry): %s", line)
        else:
            logger.debug("dtf: worker registry still unreachable: %s", line)
        self._failing = True
