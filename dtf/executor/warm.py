"""Warm pytest children: forked from a process that has already imported pytest.

A spawned child (``python -m pytest``) pays for an interpreter start and for importing
pytest and its builtin plugins before it collects anything; that is most of the cost of a
small batch. :func:`fork_pytest` instead forks the calling process, which has imported pytest
and ``dtf.pytest_plugin`` once (:func:`warm_up`), and runs ``pytest.main`` in the fork.

What the parent must guarantee (checked by :func:`fork_unsafe_reason`):

* It runs no other thread. A thread holding a lock (logging, an allocator, a DB driver) at
  the moment of the fork leaves that lock held forever in the child. So the fork is made
  only from the main thread while ``threading.active_count() == 1``; otherwise the caller
  spawns instead.
* It never imports user code (test modules, conftest files, the project under test): the
  child starts with the parent's ``sys.modules``, so a module imported there would shadow
  the batch's own. The parent imports only pytest, its builtin plugins, a few stdlib
  modules they load lazily, ``dtf.pytest_plugin``, and the plugins that installed
  packages declare as ``pytest11`` entry points (pytest-xdist, anyio, ...), imported under
  pytest's assertion rewriting as a child's pytest would import them (importing them is
  most of a small batch's start-up: 0.2-0.5 s per child). A plugin installed in editable
  mode (its code outside site-packages, maybe the project under test) is left to the child.

What the child resets so that a test sees what it would see in a spawned child: session
(``setsid``), death signal, working directory, ``os.environ``, fds 0/1/2 and ``sys.std*``,
``sys.argv``, ``sys.path`` (the rootdir, as ``python -m`` puts the working directory
first, then the path a new interpreter has here, asked once by :func:`warm_up`),
``__main__``, signal handlers and mask, root logger and logging handlers, atexit functions,
and the import caches; ``os.environ`` is the batch's (the worker's less dtf's settings and
secrets, see :mod:`dtf.executor.child_env`), and the worker's slot locks are closed at the
fork (:mod:`dtf.executor.exclusive`), so nothing the tests fork keeps them. What it cannot
reset and inherits from the parent: the other open file descriptors (never used, and closed
only by the kernel at exit), warning filters, the hash seed, and modules the parent had
imported (e.g. celery) -- the same versions a spawned child would import from the same
environment. So a child is spawned instead when the fork could not be faithful: the
batch's ``env`` changes a variable that only an interpreter start reads (``PYTHON*``);
``PYTHONPATH`` has relative entries (they resolve against the child's rootdir); or the
rootdir has a top-level module named like one the parent has imported (a checkout of dtf
or celery under test, say), which the parent's would shadow.

The child never returns into the caller's code: whatever happens it leaves with
``os._exit``, after running pytest's and the tests' atexit functions (not the parent's)
and joining the non-daemon threads the tests left, as interpreter shutdown would.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import importlib.util
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from dtf.errors import exit_now, system_exit_code
from dtf.executor.lifetime import die_with_parent

# Exit code of a forked child whose setup or pytest.main raised (EX_SOFTWARE).
CHILD_FAILED = 70
# Modules ``pytest.main`` imports lazily that are safe to import in any parent: stdlib only.
# (``readline`` is left out: importing it may write terminal control codes to stdout.)
_LAZY_STDLIB = ("pdb", "cmd", "code", "codeop", "queue", "faulthandler", "_queue")

_warm = False
# sys.path of a fresh interpreter here, less its first entry (the script's directory or
# the working directory), which the child replaces with its rootdir; None if unknown.
_fresh_path: list[str] | None = None
# Objects the child replaced (old sys.std*, __main__); kept alive so that freeing them
# cannot flush the parent's buffers into the child's files or close the parent's fds.
_kept: list[object] = []


class Child(Protocol):
    """A started pytest child, as the runner watches it; ``subprocess.Popen`` is one."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def fork_available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "setsid")


def warm_up() -> None:
    """Import pytest, its builtin plugins and ``dtf.pytest_plugin`` into this process, once.

    Safe to call early (e.g. from Celery's ``worker_process_init``) so that the first batch
    does not pay for it.
    """
    global _warm
    if _warm:
        return
    import _pytest.config
    import pytest  # noqa: F401

    for name in _pytest.config.default_plugins:
        importlib.import_module(f"_pytest.{name}")
    for name in _LAZY_STDLIB:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import dtf.pytest_plugin  # noqa: F401

    preload_entry_point_plugins()
    global _fresh_path
    _fresh_path = _ask_fresh_path()
    _warm = True


def preload_entry_point_plugins() -> list[str]:
    """Import the installed ``pytest11`` plugins, asserts rewritten as in a pytest session.

    Returns the modules imported. Uses pytest's own rewriting hook and plugin marking;
    anything unexpected (a plugin that fails to import, a pytest whose internals moved)
    leaves the rest to the children, which import what is missing as usual.
    """
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    try:
        from importlib.metadata import entry_points

        from _pytest.assertion import AssertionState
        from _pytest.assertion.rewrite import AssertionRewritingHook, assertstate_key
        from _pytest.config import get_config

        config = get_config()
        config.stash[assertstate_key] = AssertionState(config, "rewrite")
        hook = AssertionRewritingHook(config)
        modules = [
            ep.module
            for ep in entry_points(group="pytest11")
            if ep.module not in sys.modules and _installed_in_site_packages(ep.module)
        ]
    except Exception:
        logging.getLogger(__name__).debug("not preloading pytest plugins", exc_info=True)
        return []
    loaded = []
    sys.meta_path.insert(0, hook)
    try:
        config._mark_plugins_for_rewrite(hook, False)
        for module in dict.fromkeys(modules):
            try:
                importlib.import_module(module)
            except Exception:
                logging.getLogger(__name__).debug("pytest plugin %s left to the children",
                                                  module, exc_info=True)  # fmt: skip
            else:
                loaded.append(module)
    except Exception:
        logging.getLogger(__name__).debug("preloading pytest plugins stopped", exc_info=True)
    finally:
        sys.meta_path.remove(hook)
    return loaded


def _installed_in_site_packages(module: str) -> bool:
    """Whether ``module``'s top-level package lives in a site-packages directory."""
    import site
    import sysconfig

    spec = importlib.util.find_spec(module.partition(".")[0])
    if spec is None:
        return False
    places = [spec.origin, *(spec.submodule_search_locations or [])]
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    roots.update(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        roots.add(site.getusersitepackages())
    roots = {os.path.realpath(root) + os.sep for root in roots}
    return any(place and os.path.realpath(place).startswith(tuple(roots)) for place in places)


def _ask_fresh_path() -> list[str] | None:
    """What sys.path a spawned child would have after its first entry (asked once)."""
    code = "import json, sys; print(json.dumps(sys.path[1:]))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout
        path = json.loads(out)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if isinstance(path, list) and all(isinstance(entry, str) for entry in path):
        return path
    return None


def fork_unsafe_reason(
    env_overrides: Mapping[str, str] | None = None, rootdir: Path | None = None
) -> str | None:
    """Why forking this process now would be unsafe or unfaithful; None if it is fine.

    ``rootdir``: also refuse when a module at its top level has the name of a module this
    process has imported (e.g. a checkout of dtf or celery under test), which a fork
    would shadow with the parent's.
    """
    if not fork_available():
        return "os.fork is not available on this platform"
    if threading.current_thread() is not threading.main_thread():
        return "run_pytest_batch was called from a thread other than the main thread"
    count = threading.active_count()
    if count != 1:
        names = ", ".join(sorted(t.name for t in threading.enumerate()))
        return f"{count} threads are running ({names}); a fork could inherit a held lock"
    for key, value in (env_overrides or {}).items():
        if key.startswith("PYTHON") and os.environ.get(key) != value:
            return f"env sets {key}, which only a new interpreter reads"
    pythonpath = os.environ.get("PYTHONPATH", "")
    if any(entry and not os.path.isabs(entry) for entry in pythonpath.split(os.pathsep)):
        return "PYTHONPATH has relative entries, which a child resolves from its rootdir"
    if rootdir is not None:
        shadowed = sorted(_top_level_modules(Path(rootdir)).intersection(sys.modules))
        if shadowed:
            return (
                f"{rootdir} has modules named like ones this process imported "
                f"({', '.join(shadowed)}); a fork would run the parent's"
            )
    return None


def _top_level_modules(rootdir: Path) -> set[str]:
    names = set()
    try:
        entries = list(os.scandir(rootdir))
    except OSError:
        return names
    for entry in entries:
        name = entry.name
        if name.endswith(".py"):
            name = name[:-3]
        else:
            with contextlib.suppress(OSError):
                if not entry.is_dir():
                    continue
        if name.isidentifier() and not name.startswith("__"):
            names.add(name)
    return names


class ForkedChild:
    """A child made by :func:`fork_pytest`; the ``Child`` interface of ``subprocess.Popen``."""

    def __init__(self, pid: int, args: Sequence[str]) -> None:
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Reaped by someone else (SIGCHLD ignored); Popen reports 0 here too.
                self.returncode = 0
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        if timeout is None:
            while True:
                try:
                    pid, status = os.waitpid(self.pid, 0)
                except ChildProcessError:
                    self.returncode = 0
                    return 0
                except InterruptedError:  # pragma: no cover - retried by Python itself
                    continue
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
                    return self.returncode
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return self.returncode


def fork_pytest(
    args: Sequence[str],
    *,
    plugins: Sequence[object] = (),
    rootdir: Path,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    memory_limit_mb: float | None = None,
) -> ForkedChild:
    """Fork this process and run ``pytest.main(args, plugins)`` in the fork.

    ``env`` replaces os.environ in the child; ``stdout``/``stderr`` are truncated and
    receive fds 1 and 2; ``memory_limit_mb`` caps the child's address space (see
    :func:`limit_memory`). The caller must have checked :func:`fork_unsafe_reason`.
    """
    warm_up()
    args = list(args)
    plugins = list(plugins)
    env = dict(env)
    for stream in (sys.stdout, sys.stderr):
        # Otherwise what the parent buffered could be written again by the child.
        with contextlib.suppress(Exception):
            stream.flush()
    parent = os.getpid()
    # Frozen objects are skipped by the child's collections (pytest collects at exit):
    # walking the parent's heap there costs time and copies its pages. Unfrozen at once
    # in the parent, unless someone else froze objects on purpose.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        pid = os.fork()
    finally:
        if freeze and os.getpid() == parent:
            gc.unfreeze()
    if pid:
        return ForkedChild(pid, args)
    code = CHILD_FAILED
    try:
        # Session and output first: whatever fails later is reported in the stderr file.
        os.setsid()
        _redirect_stdio(stdout, stderr)
        limit_memory(memory_limit_mb)
        code = _child_main(parent, args, plugins, rootdir, env)
    except SystemExit as exc:
        code = system_exit_code(exc)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        exit_now(code)


def limit_memory(memory_limit_mb: float | None) -> None:
    """Cap this process's address space (RLIMIT_AS) at ``memory_limit_mb`` MiB, if given.

    An allocation past it fails (``MemoryError`` in Python) instead of the kernel's OOM
    killer taking the worker; the runner reports the test as out_of_memory.
    """
    if not memory_limit_mb:
        return
    import resource

    limit = int(memory_limit_mb * 1024 * 1024)
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _child_main(
    parent: int,
    args: list[str],
    plugins: list[object],
    rootdir: Path,
    env: dict[str, str],
) -> int:
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return CHILD_FAILED
    _reset_signals()
    _not_a_pool_process()
    os.chdir(rootdir)
    os.environ.clear()
    os.environ.update(env)
    import pytest

    main_file = os.path.join(os.path.dirname(pytest.__file__), "__main__.py")
    sys.argv = [main_file, *args]
    # As "python -m" starts it: the working directory first, then the interpreter's own
    # path -- not what the parent added at run time (its script directory or cwd, say).
    if _fresh_path is None:
        sys.path.insert(0, str(rootdir))
    else:
        sys.path[:] = [str(rootdir), *_fresh_path]
    fresh_main()
    _reset_logging()
    atexit._clear()
    importlib.invalidate_caches()
    try:
        code = int(pytest.main(args, plugins=plugins))
    except SystemExit as exc:
        code = system_exit_code(exc)
    finish_like_interpreter_shutdown()
    return code


def _not_a_pool_process() -> None:
    """A child forked from a Celery pool process is no daemon, as a spawned interpreter is
    not: multiprocessing refuses a daemon children (a test's Pool would fail), and the
    pool's own children are not this process's to wait for."""
    for name in ("multiprocessing.process", "billiard.process"):
        module = sys.modules.get(name)
        if module is None:
            continue
        current = module._current_process
        current._config = {**current._config, "daemon": False}
        module._children = set()


def _reset_signals() -> None:
    """Handlers as a fresh interpreter has them: Python-level ones cannot survive an exec."""
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if handler is None or handler in (signal.SIG_DFL, signal.SIG_IGN):
            continue  # installed outside Python, or ignored: an exec keeps those too
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        if handler is not default:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, default)
    # The runner stops children with SIGTERM; a mask inherited from the parent must not hold it.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _redirect_stdio(stdout: Path, stderr: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for target, path, mode in (
        (0, os.devnull, os.O_RDONLY),
        (1, str(stdout), flags),
        (2, str(stderr), flags),
    ):
        fd = os.open(path, mode, 0o644)
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"
    _kept.extend([sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__])
    sys.stdin = sys.__stdin__ = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(1, "w", encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        open(2, "wb", buffering=0, closefd=False),  # noqa: SIM115
        encoding=encoding,
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )


def fresh_main() -> None:
    """A ``__main__`` like ``python -m pytest``'s, e.g. for multiprocessing's spawn."""
    _kept.append(sys.modules.get("__main__"))
    main = types.ModuleType("__main__")
    spec = importlib.util.find_spec("pytest.__main__")
    main.__spec__ = spec
    main.__file__ = sys.argv[0]
    main.__package__ = "pytest"
    main.__loader__ = spec.loader if spec is not None else None
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main


def _reset_logging() -> None:
    """Drop the parent's handlers (e.g. a Celery worker's log file) as a fresh process has none."""
    logging.disable(logging.NOTSET)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger):
            continue
        logger.disabled = False
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.NullHandler):
                logger.removeHandler(handler)


def finish_like_interpreter_shutdown() -> None:
    """What interpreter shutdown does that a test can see, in its order: the threading
    module's shutdown (its exit hooks, e.g. concurrent.futures telling the workers of a
    ThreadPoolExecutor nobody shut down to stop, then joining the non-daemon threads),
    then the atexit functions. The caller then leaves with ``os._exit``."""
    shutdown = getattr(threading, "_shutdown", None)  # what Py_FinalizeEx calls
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        shutdown()
    else:
        main = threading.main_thread()
        for thread in threading.enumerate():
            if thread is not main and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
