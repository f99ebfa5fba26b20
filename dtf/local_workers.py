"""Worker processes dtf starts for one run on this machine, and stops afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path


class LocalWorkers:
    """``celery -A dtf worker`` with ``count`` pool processes, as a context manager."""

    def __init__(
        self,
        count: int,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        db_url: str | None = None,
    ) -> None:
        self.count = max(1, count)
        self.db_url = db_url
        self.log_file = log_dir / f"worker-{os.getpid()}.log"
        self.env = dict(os.environ if env is None else env)
        # The machine does not change between runs: detect its hardware once an hour.
        self.env.setdefault("DTF_INVENTORY_CACHE", str(log_dir.parent / "inventory.json"))
        self.hostname = f"dtf-local-{os.getpid()}@{socket.gethostname()}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> LocalWorkers:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "celery", "-A", "dtf", "worker",
            # No -Q: the worker declares the queues of the hardware it detects.
            "--concurrency", str(self.count),
            "--pool", "prefork",
            "--hostname", self.hostname,
            # One machine, one run: no need to sync with or gossip to other workers.
            "--without-mingle", "--without-gossip",
            "--loglevel", "INFO",
            "--logfile", str(self.log_file),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        """Warm shutdown for ``grace`` seconds, then kill what is left of the process group.

        With ``grace=0`` (the run has finished, so no task is in flight) the
        workers are killed at once: Celery's warm shutdown on the polling
        filesystem transport takes seconds and there is nothing left to save.
        """
        if self.process is None:
            return
        if self.process.poll() is None and grace > 0:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._unregister()

    def _unregister(self) -> None:
        # Workers of one run are gone for good, and killed ones cannot say
        # goodbye: drop their registry row instead of leaving it "lost".
        if self.db_url is None:
            return
        from sqlalchemy import delete

        from dtf.db.models import Worker
        from dtf.db.session import session_scope

        with contextlib.suppress(Exception), session_scope(self.db_url) as session:
            session.execute(delete(Worker).where(Worker.hostname == self.hostname))

    def problem(self) -> str | None:
        """Why the local workers cannot serve, or None while they run."""
        if self.alive():
            return None
        return (
            f"the local workers exited: {self.last_log_line() or 'no log'} (log: {self.log_file})"
        )

    def last_log_line(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""
