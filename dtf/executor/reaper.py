"""What a batch or a command started ends with it, daemons included.

A test's processes run in its pytest child's process group and session, which dtf kills
when the child ends (:func:`kill_session` also finds those that left the group). A daemon
escapes both: it calls ``setsid`` and its parent exits, so it is an orphan. On Linux the
worker's pool process is made a child subreaper (``PR_SET_CHILD_SUBREAPER``): orphans
below it become its children instead of init's, and :func:`ending_orphans` kills, when a
batch ends, every child it adopted meanwhile, with what they started, and reaps them.
Children dtf started itself and still watches (:func:`watching`) are never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator

logger = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
#: Rounds of killing adopted children: each may adopt the children of those killed.
MAX_ROUNDS = 20
#: Seconds to wait for a killed orphan to be reapable (one in uninterruptible sleep).
REAP_WAIT_S = 5.0

_subreaper_pid: int | None = None
#: Children dtf started and reaps itself (pytest children, commands): not orphans.
_watched: set[int] = set()


def become_subreaper() -> bool:
    """Make this process adopt its descendants' orphans (Linux); False where it cannot.

    The setting is not inherited across fork, so a forked pytest child is no subreaper.
    """
    global _subreaper_pid
    if _subreaper_pid == os.getpid():
        return True
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        logger.warning("could not become a child subreaper: %s", os.strerror(ctypes.get_errno()))
        return False
    _subreaper_pid = os.getpid()
    return True


@contextlib.contextmanager
def watching(pid: int) -> Iterator[None]:
    """``pid`` is a child the caller reaps itself: never an adopted orphan."""
    _watched.add(pid)
    try:
        yield
    finally:
        _watched.discard(pid)


def keep(pid: int) -> None:
    """``pid`` is a child that outlives the slot it was started in (a warm measurement
    process): never an adopted orphan, until :func:`forget`."""
    _watched.add(pid)


def forget(pid: int) -> None:
    _watched.discard(pid)


@contextlib.contextmanager
def ending_orphans() -> Iterator[None]:
    """Become a subreaper; on leaving, kill and reap the children adopted meanwhile."""
    if not become_subreaper():
        yield
        return
    before = set(_children(_processes(), os.getpid()))
    try:
        yield
    finally:
        try:
            ended = end_adopted(before)
        except Exception:
            logger.exception("could not end the processes the batch left behind")
        else:
            if ended:
                logger.warning("killed %d processes left behind: %s", len(ended), sorted(ended))


def end_adopted(keep: set[int]) -> set[int]:
    """Kill this process's children not in ``keep`` nor watched, and their descendants;
    reap the children. Returns the pids killed."""
    me = os.getpid()
    ended: set[int] = set()
    for _ in range(MAX_ROUNDS):
        table = _processes()
        adopted = {pid for pid in _children(table, me) if pid not in keep and pid not in _watched}
        if not adopted:
            break
        for pid in _descendants(table, adopted):
            if table[pid][2] != "Z":
                ended.add(pid)
            _kill(pid)
        for pid in adopted:
            _reap(pid)
    return ended


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (a child's own: its pid), where they can
    be listed. The kernel keeps a session's id from being reused while it has members."""
    if sid <= 0 or sid == os.getsid(0):
        return
    for pid, (_ppid, session, state) in _processes().items():
        if session == sid and state != "Z" and pid != os.getpid():
            _kill(pid)


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, state) of every process in /proc (empty elsewhere)."""
    table: dict[int, tuple[int, int, str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
        fields = data[data.rfind(b")") + 2 :].split()
        with contextlib.suppress(IndexError, ValueError):
            table[int(name)] = (int(fields[1]), int(fields[3]), fields[0].decode())
    return table


def _children(table: dict[int, tuple[int, int, str]], parent: int) -> list[int]:
    return [pid for pid, (ppid, _sid, _state) in table.items() if ppid == parent]


def _descendants(table: dict[int, tuple[int, int, str]], roots: set[int]) -> set[int]:
    found = set(roots)
    frontier = list(roots)
    while frontier:
        parent = frontier.pop()
        for pid in _children(table, parent):
            if pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    """Wait for the killed child ``pid``; give up after REAP_WAIT_S (a next round retries)."""
    deadline = time.monotonic() + REAP_WAIT_S
    delay = 0.001
    while True:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # reaped by someone else, or not our child after all
        if done or time.monotonic() > deadline:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
