"""Exclusive batches: a test marked ``exclusive`` runs alone on its worker.

Every batch holds a slot of its worker while it runs: a shared lock for an
ordinary batch, the exclusive lock for an exclusive one. A turnstile in front
keeps the exclusive batch from starving: once it waits, no new batch of that
worker starts, the running ones finish, it runs alone, and then the others go
on. Batches of other workers are not affected, so the rest of the run goes on
elsewhere. The locks are ``flock`` locks on two files per worker hostname,
released by the kernel if a pool process dies.

Nothing a batch starts keeps a slot: the lock files are opened close-on-exec and
closed in every process forked while they are held (a warm pytest child, and so
whatever its tests fork), and the processes the batch left behind, daemons
included, are ended before its slot is released (:mod:`dtf.executor.reaper`).

The lock files live in :data:`SLOTS_DIR`, which must be a directory (not a
symlink) owned by this user with mode 0700: dtf creates it so, makes one of its
own 0700, and refuses any other.

The waiting happens inside the task and counts toward its Celery time limit;
for a whole machine or a whole GPU, run one worker per machine (or per GPU).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dtf.executor.reaper import ending_orphans

#: Where the lock files live; one pair per worker hostname.
SLOTS_DIR = Path(tempfile.gettempdir()) / "dtf-worker-slots"

#: The lock files' fds this process holds now; closed in its forked children.
_held: set[int] = set()


class UnsafeSlotsDir(OSError):
    """The slots directory is a symlink, not a directory, or another user's."""


def open_slots_dir(path: Path | None = None) -> int:
    """An fd of ``path`` (default :data:`SLOTS_DIR`), made 0700 if missing; refused
    (:class:`UnsafeSlotsDir`) unless it is a directory of this user's, not a symlink.
    One of this user's with a wider mode is made 0700."""
    path = SLOTS_DIR if path is None else path
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path) or not os.path.isdir(path):
            raise UnsafeSlotsDir(f"{path} must be a directory, not a symlink or a file") from exc
        raise
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid():
            raise UnsafeSlotsDir(
                f"{path} belongs to uid {info.st_uid}, not to this user ({os.geteuid()})"
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lock_file(folder: int, hostname: str, kind: str) -> int:
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", hostname)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(f"{safe}.{kind}", flags, 0o600, dir_fd=folder)
    _held.add(fd)
    return fd


def _release(fd: int) -> None:
    if fd in _held:  # else a forked child closed it already (the number may be reused)
        _held.discard(fd)
        os.close(fd)  # closing releases the flock


def _close_in_forked_child() -> None:
    """A forked process must not keep the parent's slot: it may outlive the batch."""
    for fd in list(_held):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_forked_child)


@contextlib.contextmanager
def worker_slot(hostname: str, *, exclusive: bool) -> Iterator[None]:
    """Hold a slot of ``hostname``: shared with other batches, or the whole worker.

    What the holder started and left running is ended before the slot is released.
    """
    folder = open_slots_dir()
    try:
        gate = _lock_file(folder, hostname, "gate")
        try:
            slots = _lock_file(folder, hostname, "slots")
        except BaseException:
            _release(gate)
            raise
    finally:
        os.close(folder)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        if exclusive:
            # Keep the turnstile closed until the running batches have finished.
            fcntl.flock(slots, fcntl.LOCK_EX)
            fcntl.flock(gate, fcntl.LOCK_UN)
        else:
            fcntl.flock(gate, fcntl.LOCK_UN)
            fcntl.flock(slots, fcntl.LOCK_SH)
        with ending_orphans():
            yield
    finally:
        _release(slots)
        _release(gate)


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
