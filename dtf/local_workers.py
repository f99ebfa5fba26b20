"""Worker processes ``dtf run`` starts on this machine, kept warm for the next run.

Starting a Celery worker costs seconds (imports, hardware detection, the pool),
which a short run would pay every time. So, like a build daemon, the local
workers stay up after a run and the next ``dtf run`` of the same project takes
them over: ``DTF_LOCAL_WORKERS_IDLE`` seconds (default 300; 0 in CI, where the
``CI`` variable is set) after their last task they stop on their own.

Workers are reused only when nothing that shapes a test's world changed: the
Python, the installed packages, dtf's own code, the worker count, and the
environment (a test sees the worker's environment, less dtf's settings and
secrets). Anything else starts new ones and stops the old ones, which would
otherwise take batches from the same queues. A state file per project
(``$DTF_HOME/local-workers/``) names them, under a lock that their idle shutdown
takes too, so a run never takes over workers that are about to leave.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from dtf.launch import python_module_command

#: Variables that change between shells without changing what a test sees.
VOLATILE_ENV = frozenset(
    {"_", "OLDPWD", "PWD", "SHLVL", "COLUMNS", "LINES", "TERM_SESSION_ID", "WINDOWID"}
)
DEFAULT_IDLE_S = 300.0


def idle_seconds(env: Mapping[str, str]) -> float:
    """How long local workers wait for the next run; 0 stops them after each run."""
    value = env.get("DTF_LOCAL_WORKERS_IDLE")
    if value is None or not value.strip():
        return 0.0 if env.get("CI") else DEFAULT_IDLE_S
    try:
        return max(0.0, float(value))
    except ValueError:
        from dtf.errors import BadInput

        raise BadInput(
            f"DTF_LOCAL_WORKERS_IDLE={value!r} is not a number of seconds; "
            "set it to 0 to stop local workers after each run"
        ) from None


def fingerprint(count: int, env: Mapping[str, str]) -> str:
    """What local workers must share with this run to serve it."""
    import dtf

    digest = hashlib.sha256()
    digest.update(f"{sys.executable}\0{dtf.__version__}\0{count}\0".encode())
    # Installing or removing a package changes its site-packages directory.
    for entry in sys.path:
        if Path(entry).name not in ("site-packages", "dist-packages"):
            continue
        with contextlib.suppress(OSError):
            digest.update(f"{entry}:{os.stat(entry).st_mtime_ns}\0".encode())
    for package in (Path(dtf.__file__).parent, Path(dtf.__file__).parent.parent / "workers"):
        for source in sorted(package.rglob("*.py")):
            with contextlib.suppress(OSError):
                digest.update(f"{source}:{source.stat().st_mtime_ns}\0".encode())
    for key in sorted(set(env) - VOLATILE_ENV):
        digest.update(f"{key}={env[key]}\0".encode())
    return digest.hexdigest()[:16]


#: What changes what hardware detection finds, besides the machine itself.
DETECTION_ENV = (
    "PATH", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
    "DTF_BROWSER", "DTF_BROWSER_FLAGS", "DTF_WEBGPU_SOFTWARE",
)  # fmt: skip


def inventory_cache(env: Mapping[str, str]) -> Path:
    """Where local workers keep what detection found: per machine (the user's cache
    folder), not per project, keyed by the variables that change what it finds."""
    root = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dtf"
    key = hashlib.sha256(
        "\0".join(f"{name}={env.get(name, '')}" for name in DETECTION_ENV).encode()
    ).hexdigest()[:16]
    return root / f"inventory-{key}.json"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the lock of a state directory (workers' idle shutdown takes it too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        self.env = dict(os.environ if env is None else env)
        self.idle_s = idle_seconds(self.env)
        self.state_dir = log_dir.parent / "local-workers"
        self.key = fingerprint(self.count, self.env)
        #: the environment as the command runs in it, which a command server must share
        self.command_env = dict(self.env)
        self.log_file = log_dir / f"worker-{os.getpid()}.log"
        # The machine does not change between runs: detect its hardware once an hour.
        self.env.setdefault("DTF_INVENTORY_CACHE", str(inventory_cache(self.env)))
        self.hostname = f"dtf-local-{os.getpid()}@{socket.gethostname()}"
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        #: True when this run took over workers an earlier run left warm
        self.reused = False

    @property
    def state_file(self) -> Path:
        return self.state_dir / f"{self.key}.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "lock"

    def __enter__(self) -> LocalWorkers:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Take over warm workers of an identical set-up, or start new ones."""
        with locked(self.lock_file):
            if self.idle_s > 0:
                self._start_command_server()
            if self.idle_s > 0 and self._take_over():
                return
            self._stop_others()
            self._spawn()
            if self.idle_s > 0:
                self._write_state()

    def _start_command_server(self) -> None:
        """The next ``dtf`` command of this set-up runs warm, as the next run's workers do."""
        from dtf import command_server

        home = self.state_dir.parent
        command_server.stop_all(home, keep=command_server.server_key(self.command_env))
        command_server.start(
            home, self.command_env, self.idle_s, self.log_file.parent / "command-server.log"
        )

    def _take_over(self) -> bool:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return False
        if not process_alive(state.get("pid", 0)):
            self.state_file.unlink(missing_ok=True)
            return False
        self.pid, self.hostname = state["pid"], state["hostname"]
        self.log_file = Path(state["log_file"])
        self.reused = True
        self.state_file.touch()  # tells the workers' idle check a run just began
        return True

    def _stop_others(self) -> None:
        """Stop warm workers of another set-up: they would serve the same queues."""
        for stale in self.state_dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                state = json.loads(stale.read_text())
                _kill_group(state["pid"])
                unregister(self.db_url, state["hostname"])
            stale.unlink(missing_ok=True)

    def _spawn(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        # They take work only from their own queue (see workers/startup.py).
        env["DTF_PRIVATE_WORKER"] = "1"
        if self.idle_s > 0:
            env["DTF_IDLE_EXIT_S"] = str(self.idle_s)
            env["DTF_LOCAL_WORKERS_STATE"] = str(self.state_file)
        command = python_module_command(
            "celery", "-A", "dtf", "worker",
            # No -Q: the worker declares the queues of the hardware it detects.
            "--concurrency", str(self.count),
            "--pool", "prefork",
            "--hostname", self.hostname,
            # One machine: no need to sync with or gossip to other workers.
            "--without-mingle", "--without-gossip",
            "--loglevel", "INFO",
            "--logfile", str(self.log_file),
        )  # fmt: skip
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def _write_state(self) -> None:
        state = {
            "pid": self.pid,
            "hostname": self.hostname,
            "log_file": str(self.log_file),
            "count": self.count,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and process_alive(self.pid)

    def finish(self, *, clean: bool) -> None:
        """After the run: leave the workers warm for the next one, or stop them.

        A run that did not end cleanly (interrupted, an error) stops them: they
        may still be running its batches.
        """
        if clean and self.idle_s > 0 and self.alive():
            with contextlib.suppress(OSError):
                self.state_file.touch()
            return
        self.stop(grace=0 if clean else 15)

    def stop(self, grace: float = 15.0) -> None:
        """Warm shutdown for ``grace`` seconds, then kill what is left of the process group.

        With ``grace=0`` (the run has finished, so no task is in flight) the
        workers are killed at once: Celery's warm shutdown on the polling
        filesystem transport takes seconds and there is nothing left to save.
        """
        if self.pid is None:
            return
        if self.alive() and grace > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        _kill_group(self.pid)
        if self.process is not None:
            self.process.wait()
        with contextlib.suppress(OSError):
            if json.loads(self.state_file.read_text()).get("pid") == self.pid:
                self.state_file.unlink()
        unregister(self.db_url, self.hostname)

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


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def unregister(db_url: str | None, hostname: str) -> None:
    """Drop a local worker's registry row: it is gone for good, and a killed one
    cannot say goodbye, so the row would otherwise show it as lost."""
    if db_url is None:
        return
    from sqlalchemy import delete

    from dtf.db.models import Worker
    from dtf.db.session import session_scope

    with contextlib.suppress(Exception), session_scope(db_url) as session:
        session.execute(delete(Worker).where(Worker.hostname == hostname))


def stop_local_workers(home: Path, db_url: str | None) -> tuple[int, int]:
    """Stop every warm local worker and command server of the project at ``home``;
    returns how many of each were running."""
    from dtf import command_server

    state_dir = home / "local-workers"
    stopped = 0
    servers = command_server.stop_all(home)
    with locked(state_dir / "lock"):
        for state_file in state_dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                state = json.loads(state_file.read_text())
                if process_alive(state["pid"]):
                    stopped += 1
                _kill_group(state["pid"])
                unregister(db_url, state["hostname"])
            state_file.unlink(missing_ok=True)
    return stopped, servers
