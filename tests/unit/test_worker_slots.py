"""The worker slots' lock files (issue 16, items 3 and 9): their folder is this user's,
0700, never a symlink; no process a batch forks or starts keeps a slot's lock."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dtf.executor import exclusive
from dtf.executor.exclusive import UnsafeSlotsDir, open_slots_dir, worker_slot

#: Holds a slot, then lists the lock files' fds it holds, a fork of it holds, and a
#: program it starts holds (as a test's daemon, forked or started, would).
HOLDER = """
import json, os, subprocess, sys
from pathlib import Path
from dtf.executor import exclusive

exclusive.SLOTS_DIR = Path(sys.argv[1])

def lock_files(pid):
    fds = f"/proc/{pid}/fd"
    links = []
    for fd in os.listdir(fds):
        try:
            links.append(os.readlink(f"{fds}/{fd}"))
        except OSError:
            pass
    return [link for link in links if link.startswith(sys.argv[1])]

with exclusive.worker_slot("host@example", exclusive=False):
    seen = {"holder": lock_files(os.getpid())}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, json.dumps(lock_files(os.getpid())).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        seen["forked"] = json.loads(answer.read())
    os.waitpid(pid, 0)
    started = subprocess.run(["ls", "-l", "/proc/self/fd/"], close_fds=False,
                             capture_output=True, text=True)
    seen["started"] = [line for line in started.stdout.splitlines() if sys.argv[1] in line]
print(json.dumps(seen))
"""


@pytest.fixture
def slots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "slots"
    monkeypatch.setattr(exclusive, "SLOTS_DIR", path)
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_slots_dir_is_made_0700(slots: Path) -> None:
    os.close(open_slots_dir())

    assert mode_of(slots) == 0o700


def test_a_slots_dir_of_this_users_with_a_wider_mode_is_made_0700(slots: Path) -> None:
    slots.mkdir(mode=0o755)
    os.chmod(slots, 0o777)

    os.close(open_slots_dir())

    assert mode_of(slots) == 0o700


def test_a_slots_dir_that_is_a_symlink_is_refused(slots: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir()
    slots.symlink_to(elsewhere)

    with pytest.raises(UnsafeSlotsDir, match="not a symlink"), worker_slot("h", exclusive=True):
        pass

    assert list(elsewhere.iterdir()) == []


def test_a_file_in_place_of_the_slots_dir_is_refused(slots: Path) -> None:
    slots.write_text("")

    with pytest.raises(UnsafeSlotsDir):
        open_slots_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's folder needs root")
def test_another_users_slots_dir_is_refused(slots: Path) -> None:
    slots.mkdir(mode=0o700)
    os.chown(slots, 65534, 65534)

    with pytest.raises(UnsafeSlotsDir, match="belongs to uid 65534"):
        open_slots_dir()


def test_a_lock_file_that_is_a_symlink_is_not_followed(slots: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("kept")
    slots.mkdir(mode=0o700)
    (slots / "host@example.gate").symlink_to(victim)

    with pytest.raises(OSError), worker_slot("host@example", exclusive=False):
        pass

    assert victim.read_text() == "kept"


def test_no_process_forked_or_started_while_a_slot_is_held_keeps_its_locks(
    tmp_path: Path,
) -> None:
    slots = tmp_path / "slots"
    # In a process of its own: a worker slot makes its holder a child subreaper.
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(slots)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert sorted(Path(p).name for p in seen["holder"]) == [
        "host@example.gate",
        "host@example.slots",
    ]
    assert seen["forked"] == []
    assert seen["started"] == []
