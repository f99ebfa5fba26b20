"""Idle shutdown of the local workers ``dtf run`` keeps warm between runs.

``DTF_IDLE_EXIT_S`` (set by dtf for its local workers only) is how long the
worker waits without a task before it shuts itself down. A run that takes the
workers over touches their state file (``DTF_LOCAL_WORKERS_STATE``); the
check happens under the state directory's lock and counts that touch as
activity, so a run never takes over a worker that is leaving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0


class IdleExit:
    """A daemon thread that sends this worker SIGTERM after ``idle_s`` without work."""

    def __init__(self, idle_s: float, state_file: Path | None, busy: Callable[[], bool]) -> None:
        self.idle_s = idle_s
        self.state_file = state_file
        self.busy = busy
        self.last_busy = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="dtf-idle-exit", daemon=True)

    @classmethod
    def from_env(cls, busy: Callable[[], bool]) -> IdleExit | None:
        value = os.environ.get("DTF_IDLE_EXIT_S")
        if not value:
            return None
        state = os.environ.get("DTF_LOCAL_WORKERS_STATE")
        return cls(float(value), Path(state) if state else None, busy)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_EVERY_S):
            if self.busy():
                self.last_busy = time.monotonic()
            elif time.monotonic() - self.last_busy >= self.idle_s and self._leave():
                return

    def _leave(self) -> bool:
        from dtf.local_workers import locked

        if self.state_file is None:
            return self._terminate()
        with locked(self.state_file.parent / "lock"):
            try:
                touched = self.state_file.stat().st_mtime
            except OSError:
                touched = 0.0
            if time.time() - touched < self.idle_s:
                return False  # a run has just taken the workers over
            with contextlib.suppress(OSError):
                self.state_file.unlink()
            return self._terminate()

    def _terminate(self) -> bool:
        logger.info("dtf: idle for %gs, shutting down", self.idle_s)
        os.kill(os.getpid(), signal.SIGTERM)
        return True
