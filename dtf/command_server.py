"""A warm process that runs ``dtf`` commands for a thin client, as a build daemon does.

Every ``dtf`` command first imports SQLAlchemy, Celery, kombu, redis-py, pydantic
and the plugins: ~0.8 s before its first useful step, which on a short run is a
tenth of the wall time. Where ``dtf run`` keeps local workers warm
(``DTF_LOCAL_WORKERS_IDLE`` > 0), it also starts a command server that has
imported all of that once. The ``dtf`` launcher (:func:`forward`, standard
library only) finds the server of its project and set-up, hands it its
arguments, working directory, environment and its stdin, stdout and stderr
(``SCM_RIGHTS``), and the server forks a child that runs the command as ``dtf``
would have, writing straight to the launcher's terminal or pipes. The launcher
forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the child and exits with its
exit code.

A server serves only launchers with the same fingerprint as the local workers
(Python, installed packages, dtf's code, the environment; see
:func:`dtf.local_workers.fingerprint`) and the same user (``SO_PEERCRED``); it
leaves after the same idle time as the workers, and ``dtf stop-workers`` stops
it. With no server, or ``DTF_COMMAND_SERVER=0``, ``dtf`` runs in its own process
as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from dtf.launch import python_module_command

#: Commands run in the launcher's own process: stopping the servers is one of them.
NOT_FORWARDED = frozenset({"stop-workers", "worker"})
#: Signals the launcher passes on to the command running in the server.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
#: What the server imports before it serves: what every command would import first.
PRELOAD = (
    "click", "rich.console", "rich.table", "sqlalchemy", "sqlalchemy.orm", "psycopg2",
    "celery", "kombu", "redis", "pydantic", "pluggy",
    "dtf.celery_app", "dtf.db.models", "dtf.db.schema", "dtf.db.session", "dtf.spec",
    "dtf.submission", "dtf.scheduling.planner", "dtf.progress", "dtf.summary",
    "dtf.plugins.coordinator", "dtf.reporting", "dtf.tasks.execute", "dtf.tasks.finalize",
    "dtf.recovery.engine", "sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.sqlite",
    "kombu.transport.redis", "psutil",
)  # fmt: skip
#: Entry-point groups whose modules the server imports too (plugins, plugin commands).
PRELOAD_ENTRY_POINTS = ("dtf.plugins", "dtf.commands")
_HEADER = struct.Struct("!I")
_STDIO = (0, 1, 2)
#: The server's own descriptors (listener, wake-up pipe), closed in each command's child.
_SERVER_FDS: list[int] = []


def project_home(env: Mapping[str, str], cwd: str) -> Path:
    """``$DTF_HOME``, else the ``.dtf`` found from ``cwd`` as git finds ``.git``: where
    :func:`dtf.config.load_settings` looks."""
    from dtf.config import home_of

    return home_of(env, cwd)


def server_key(env: Mapping[str, str]) -> str:
    """The fingerprint a server and its launchers share (the local workers', any count)."""
    from dtf.local_workers import fingerprint

    return fingerprint(0, env)


def state_file(home: Path, key: str) -> Path:
    return home / "local-workers" / "command-server" / f"{key}.json"


def socket_path(home: Path, key: str) -> Path:
    """A short path (sockets allow ~100 bytes) in a folder only this user can enter."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"dtf-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"{folder} is not private to this user")
    digest = hashlib.sha256(f"{home}\0{key}".encode()).hexdigest()[:20]
    return folder / f"{digest}.sock"


# --- the launcher's side -----------------------------------------------------------------


def launch() -> None:
    """The ``dtf`` command: in a warm command server when one serves, else here."""
    code = forward(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from dtf.cli import entry_point

    entry_point()


def forward(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
    """Run ``dtf argv`` in a warm command server; its exit code, or None when none serves.

    None means nothing ran (no server, a stale one, a refused request): the caller
    runs the command itself. Once the server has started the command, its outcome
    is final, whatever it is.
    """
    env = dict(os.environ if env is None else env)
    if env.get("DTF_COMMAND_SERVER", "").strip() == "0" or not argv or argv[0] in NOT_FORWARDED:
        return None
    try:
        cwd = os.getcwd()
        home, key = project_home(env, cwd), server_key(env)
        if not state_file(home, key).exists():
            return None
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(str(socket_path(home, key)))
    except OSError:
        return None
    with connection:
        request = json.dumps({"argv": list(argv), "cwd": cwd, "env": env, "path": sys.path})
        body = request.encode()
        try:
            socket.send_fds(connection, [_HEADER.pack(len(body))], list(_STDIO))
            connection.sendall(body)
            replies = connection.makefile("rb")
            started = _reply(replies)
        except OSError:
            return None
        if started is None or "pid" not in started:
            return None
        return _wait_for(started["pid"], replies)


def _reply(replies) -> dict | None:
    line = replies.readline()
    return json.loads(line) if line else None


def _wait_for(pid: int, replies) -> int:
    def pass_on(signum, frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, pass_on)
    try:
        finished = _reply(replies)
    except OSError:
        finished = None
    if finished is None or "exit" not in finished:
        print(
            "dtf: error: the dtf command server stopped before the command ended; "
            "run it again with DTF_COMMAND_SERVER=0 to run it in this process",
            file=sys.stderr,
        )
        return 3
    return int(finished["exit"])


# --- the server's side -------------------------------------------------------------------


def start(home: Path, env: Mapping[str, str], idle_s: float, log_file: Path) -> None:
    """Start the server of this project and set-up unless one runs; it leaves on its own."""
    from dtf.local_workers import process_alive

    key = server_key(env)
    with contextlib.suppress(OSError, ValueError, KeyError):
        if process_alive(json.loads(state_file(home, key).read_text())["pid"]):
            return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        server = subprocess.Popen(
            python_module_command("dtf.command_server", str(home), key, str(idle_s)),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    # Written now, not once the server is ready, so that the next start does not
    # start a second one; launchers that come before it listens run commands themselves.
    state = state_file(home, key)
    state.parent.mkdir(parents=True, exist_ok=True)
    tmp = state.with_suffix(f".{server.pid}.tmp")
    tmp.write_text(json.dumps({"pid": server.pid}))
    os.replace(tmp, state)


def stop_all(home: Path, keep: str | None = None) -> int:
    """Stop every command server of the project at ``home`` but ``keep``; how many ran.

    A server told to stop takes no new command; those it runs go on to their end.
    """
    from dtf.local_workers import process_alive

    stopped = 0
    for state in (home / "local-workers" / "command-server").glob("*.json"):
        if state.stem == keep:
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = json.loads(state.read_text())["pid"]
            if process_alive(pid):
                os.kill(pid, signal.SIGTERM)
                stopped += 1
        state.unlink(missing_ok=True)
    return stopped


def preload() -> None:
    """Import what commands import first; never the CLI modules themselves."""
    import importlib
    from importlib.metadata import entry_points

    # What cannot be imported here is imported (or reported) by the command that needs it.
    modules = [*PRELOAD, *(e.module for g in PRELOAD_ENTRY_POINTS for e in entry_points(group=g))]
    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    # The CLI's consoles bind to stdout and stderr when it is imported: a command's
    # child imports it after taking the launcher's, so they write where it asked.
    for name in [m for m in sys.modules if m == "dtf.cli" or m.startswith("dtf.cli_")]:
        del sys.modules[name]


def serve(home: Path, key: str, idle_s: float) -> None:
    """Import what commands need, then run each request in a forked child until idle."""
    import selectors

    preload()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    leaving: list[int] = []
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda signum, _: leaving.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    state = state_file(home, key)
    if _named(state) != os.getpid():
        return  # another server of this set-up was started after this one
    path = socket_path(home, key)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    _SERVER_FDS.extend((listener.fileno(), wake_r, wake_w))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "signal")
    running: dict[int, socket.socket] = {}
    last_activity = time.monotonic()
    while True:
        for selected, _ in selector.select(timeout=1.0):
            if selected.data == "request":
                _accept(listener, running)
            elif selected.data == "signal":
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
        _reap(running)
        if running:
            last_activity = time.monotonic()
        idle = time.monotonic() - last_activity > idle_s
        if leaving or idle or _named(state) != os.getpid():
            selector.unregister(listener)
            listener.close()
            if _named(state) in (None, os.getpid()):  # else the socket is a newer server's
                state.unlink(missing_ok=True)
                path.unlink(missing_ok=True)
            # The commands it runs end as they would have: their launchers wait for them.
            while running:
                time.sleep(0.1)
                _reap(running)
            return


def _named(state: Path) -> int | None:
    """The server process ``state`` names (``start`` wrote it), if any."""
    try:
        return json.loads(state.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None


def _accept(listener: socket.socket, running: dict[int, socket.socket]) -> None:
    connection, _ = listener.accept()
    fds: list[int] = []
    try:
        creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            raise OSError("request from another user")
        connection.settimeout(10)
        header, fds, _, _ = socket.recv_fds(connection, _HEADER.size, len(_STDIO))
        if len(header) != _HEADER.size or len(fds) != len(_STDIO):
            raise OSError("malformed request")
        (size,) = _HEADER.unpack(header)
        body = b""
        while len(body) < size:
            chunk = connection.recv(size - len(body))
            if not chunk:
                raise OSError("request cut short")
            body += chunk
        request = json.loads(body)
        if not isinstance(request, dict) or not request.get("argv"):
            raise ValueError("malformed request")
        connection.settimeout(None)
    except (OSError, ValueError):
        for fd in fds:
            os.close(fd)
        connection.close()  # the launcher sees no pid and runs the command itself
        return
    pid = os.fork()
    if pid == 0:
        _run_command(connection, fds, request)  # never returns
    for fd in fds:
        os.close(fd)
    running[pid] = connection
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} dtf {request['argv'][0]} in {request['cwd']}: pid {pid}", flush=True)
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _reap(running: dict[int, socket.socket]) -> None:
    for pid in list(running):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 3 << 8
        if not done:
            continue
        connection = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError), connection:
            # A command killed by a signal exits as a shell reports it: 128 + signal.
            connection.sendall(json.dumps({"exit": code if code >= 0 else 128 - code}).encode())
            connection.sendall(b"\n")


def _run_command(connection: socket.socket, fds: list[int], request: dict) -> None:
    """In the forked child: become the launcher's process, run the command, exit."""
    import random
    import threading

    try:
        os.setsid()  # stopping the server leaves the commands it runs alone
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.set_wakeup_fd(-1)
        for fd in _SERVER_FDS:
            with contextlib.suppress(OSError):
                os.close(fd)
        for target, fd in zip(_STDIO, fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, encoding=sys.stdin.encoding, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding=sys.stdout.encoding, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding=sys.stderr.encoding, errors="backslashreplace",  # noqa: SIM115
                          closefd=False)  # fmt: skip
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = request["path"]
        sys.argv = ["dtf", *request["argv"]]
        random.seed()

        def watch_launcher() -> None:
            # The launcher only ever closes its end: when it is gone, so is the command.
            with contextlib.suppress(OSError):
                connection.recv(1)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch_launcher, daemon=True).start()
        from dtf.cli import entry_point

        entry_point()
    finally:
        os._exit(3)  # entry_point leaves with os._exit; this is reached only if it raised


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]))
