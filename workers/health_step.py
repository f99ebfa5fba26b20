"""A consumer bootstep that stops consuming a queue whose health check fails.

The checks run once when the consumer starts (before it takes any message)
and then every ``DTF_HEALTH_INTERVAL`` seconds in a thread of their own, never
in the event loop. A failing queue is cancelled with
``consumer.cancel_task_queue`` and taken back with ``consumer.add_task_queue``
once it passes; both run on the consumer's own loop (``consumer.call_soon``).
Batches already running are not touched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from celery import bootsteps
from dtf.workers.health import Health, check_queue, health_interval

from dtf.inventory import GPU_KINDS, Inventory

logger = logging.getLogger(__name__)


class HealthMonitor:
    """The queues a worker checks and their latest results; startup fills it in."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.inventory: Inventory | None = None
        self.forced: set[str] = set()
        self.interval = health_interval()
        self.results: dict[str, Health] = {}
        #: called with (queue, health) after every check
        self.on_result: Callable[[str, Health], None] = lambda queue, health: None
        #: True while the worker runs tasks: GPU checks then keep their last result
        self.busy: Callable[[], bool] = lambda: False
        #: a private worker (dtf run's local ones) consumes only its own queue:
        #: its checks still say what it can serve, but no hardware queue is added
        self.private = False

    def run_checks(self) -> dict[str, Health]:
        """Check every queue once; returns the results."""
        if self.inventory is None:
            return {}
        busy = self.busy()
        for queue in self.queues:
            if busy and queue in GPU_KINDS and queue in self.results:
                continue  # a device check next to a running benchmark would disturb it
            health = check_queue(queue, self.inventory, self.forced)
            self.results[queue] = health
            self.on_result(queue, health)
        return dict(self.results)


#: The monitor of this worker process, set up by ``dtf.workers.startup``.
monitor = HealthMonitor()


class QueueHealth(bootsteps.StartStopStep):
    """Cancel the queues that fail their check; add them back when they pass."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs) -> None:
        super().__init__(c, **kwargs)
        self.cancelled: set[str] = set()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, c) -> None:
        # start() runs again after a broker reconnect: check and spawn only once.
        if self.thread is not None:
            return
        self.apply(c, monitor.run_checks(), soon=False)
        self.thread = threading.Thread(target=self.loop, args=(c,), name="dtf-health", daemon=True)
        self.thread.start()

    def shutdown(self, c) -> None:
        self.stopping.set()

    def loop(self, c) -> None:
        while not self.stopping.wait(monitor.interval):
            try:
                self.apply(c, monitor.run_checks(), soon=True)
            except Exception:
                logger.exception("dtf: queue health checks failed")

    def apply(self, c, results: dict[str, Health], *, soon: bool) -> None:
        """Cancel newly failing queues, add back newly passing ones."""
        if monitor.private:
            return
        for queue, health in results.items():
            if not health.ok and queue not in self.cancelled:
                logger.warning("dtf: not consuming %s: its check failed: %s", queue, health.reason)
                self.cancelled.add(queue)
                self.call(c, soon, c.cancel_task_queue, queue)
            elif health.ok and queue in self.cancelled:
                logger.info("dtf: consuming %s again: health check passed", queue)
                self.cancelled.discard(queue)
                self.call(c, soon, c.add_task_queue, queue)

    @staticmethod
    def call(c, soon: bool, fn, queue: str) -> None:
        # Before the loop runs, call directly; from the check thread, on the loop.
        if soon:
            c.call_soon(fn, queue)
        else:
            fn(queue)
