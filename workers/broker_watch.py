"""Broker outages as the worker lives them, for the recovery performance table.

Celery reconnects by itself; what dtf adds is the record: how long the broker
was gone (``broker_unreachable``, recovered by ``retry_in_place``). Two
witnesses report to one tracker, so an outage is counted once: the consumer
(its bootsteps are stopped when the connection breaks and started again once
Celery reconnected: this sees every outage the consumer lives through) and the
heartbeat's own broker check (an outage while the consumer did not notice).
"""

from __future__ import annotations

import logging
import threading
import time

from celery import bootsteps

logger = logging.getLogger(__name__)


class BrokerOutage:
    """When the broker stopped answering; records the outage once it answers again."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self._lock = threading.Lock()

    def down(self, reason: str) -> None:
        with self._lock:
            if self.down_since is None:
                logger.warning("dtf: the broker does not answer: %s", reason)
                self.down_since = time.monotonic()

    def up(self) -> float | None:
        """Seconds the outage lasted (recorded in the performance table), None if none."""
        with self._lock:
            if self.down_since is None:
                return None
            seconds = time.monotonic() - self.down_since
            self.down_since = None
        logger.info("dtf: the broker answers again after %.1fs", seconds)
        try:
            from dtf.config import load_settings
            from dtf.recovery.table import record_outage

            record_outage(load_settings().database_url, "broker_unreachable", seconds)
        except Exception:
            logger.exception("dtf: could not record the broker outage")
        return seconds


#: This worker process's tracker.
outage = BrokerOutage()


class BrokerReconnects(bootsteps.StartStopStep):
    """Stopped when the consumer loses the broker, started again when it is back."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def __init__(self, c, **kwargs) -> None:
        super().__init__(c, **kwargs)
        self.started_once = False

    def start(self, c) -> None:
        if self.started_once:
            outage.up()
        self.started_once = True

    def stop(self, c) -> None:
        from celery.worker import state

        if state.should_stop is not None or state.should_terminate is not None:
            return  # the worker is shutting down, the broker is fine
        outage.down("the consumer lost its connection")
