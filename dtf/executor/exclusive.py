"""Exclusive batches: a test marked ``exclusive`` runs alone on its worker.

Every batch holds a slot of its worker while it runs: a shared lock for an
ordinary batch, the exclusive lock for an exclusive one. A turnstile in front
keeps the exclusive batch from starving: once it waits, no new batch of that
worker starts, the running ones finish, it runs alone, and then the others go
on. Batches of other workers are not affected, so the rest of the run goes on
elsewhere. The locks are ``flock`` locks on two files per worker hostname,
released by the kernel if a pool process dies.

The waiting happens inside the task and counts toward its Celery time limit;
for a whole machine or a whole GPU, run one worker per machine (or per GPU).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Where the lock files live; one pair per worker hostname.
SLOTS_DIR = Path(tempfile.gettempdir()) / "dtf-worker-slots"


def _lock_file(hostname: str, kind: str) -> int:
    SLOTS_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", hostname)
    return os.open(SLOTS_DIR / f"{safe}.{kind}", os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def worker_slot(hostname: str, *, exclusive: bool) -> Iterator[None]:
    """Hold a slot of ``hostname``: shared with other batches, or the whole worker."""
    gate = _lock_file(hostname, "gate")
    slots = _lock_file(hostname, "slots")
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        if exclusive:
            # Keep the turnstile closed until the running batches have finished.
            fcntl.flock(slots, fcntl.LOCK_EX)
            fcntl.flock(gate, fcntl.LOCK_UN)
        else:
            fcntl.flock(gate, fcntl.LOCK_UN)
            fcntl.flock(slots, fcntl.LOCK_SH)
        yield
    finally:
        os.close(slots)  # closing releases the flock
        os.close(gate)


def takes_a_worker_slot(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a bound task body so that it runs in a slot; ``exclusive=True`` takes them all."""

    # Not functools.wraps: Celery checks call arguments against the signature
    # it sees, and that signature must include ``exclusive``.
    def run_in_slot(self, *args: Any, exclusive: bool = False, **kwargs: Any) -> Any:
        with worker_slot(self.request.hostname or "worker", exclusive=exclusive):
            return task(self, *args, **kwargs)

    run_in_slot.__name__ = task.__name__
    run_in_slot.__qualname__ = task.__qualname__
    run_in_slot.__module__ = task.__module__
    run_in_slot.__doc__ = task.__doc__
    return run_in_slot
