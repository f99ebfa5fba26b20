"""Real processes for tests: the dtf CLI, Celery workers, plain pytest."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "tests" / "suites"


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment without any DTF_* setting (local workers not kept), plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTF_")}
    # dtf run's local workers stop with each run, as in CI, unless a test asks otherwise.
    env["DTF_LOCAL_WORKERS_IDLE"] = "0"
    # Never post statuses or comments to a real CI provider from a test run.
    env["DTF_CI"] = "none"
    env.update(overrides)
    return env


def one_test_project(tmp_path: Path) -> tuple[Path, Path]:
    """A suite folder holding one passing test, and a DTF_HOME beside it."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_one.py").write_text("def test_one():\n    pass\n")
    return suite, tmp_path / "home"


def run_dtf(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``dtf ARGS`` as a user types it, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "dtf", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def recovery_stats(env: dict[str, str], cwd: Path) -> dict[str, list[str]]:
    """``dtf recovery stats``: failure class -> the strategies with a recorded attempt."""
    proc = run_dtf("recovery", "stats", "--json", env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    classes: dict[str, list[str]] = {}
    for row in json.loads(proc.stdout):
        if row["attempts"]:
            classes.setdefault(row["failure_class"], []).append(row["strategy"])
    return classes


_SUMMARY_WORDS = {"error": "error", "errors": "error"}


def pytest_counts(*args: str, cwd: Path, timeout: float = 300) -> dict[str, int]:
    """Counts by outcome from plain pytest's closing line for ``pytest ARGS``."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=clean_env(),
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if re.search(r" in [\d.]+s", line)]
    assert lines, f"pytest printed no summary line:\n{proc.stdout}\n{proc.stderr}"
    counts: dict[str, int] = {}
    for number, word in re.findall(r"(\d+) (\w+)", lines[-1].strip("= ")):
        word = _SUMMARY_WORDS.get(word, word)
        if word in ("passed", "failed", "skipped", "xfailed", "xpassed", "error"):
            counts[word] = int(number)
    return counts


class WorkerProcess:
    """A real ``celery -A dtf worker`` process."""

    def __init__(
        self,
        env: dict[str, str],
        queues: str | None,
        concurrency: int,
        name: str,
        log_dir: Path,
        prefix: Sequence[str] = (),
        command: Sequence[str] = (sys.executable, "-m", "celery", "-A", "dtf", "worker"),
        cwd: Path | None = None,
    ) -> None:
        """``queues=None`` lets the worker declare the queues of its hardware; ``prefix``
        runs it through another command (e.g. ``ip netns exec NS``); ``command`` starts
        it (``dtf worker``, say), in ``cwd`` (default: ``log_dir``)."""
        self.log = log_dir / f"{name}.log"
        self.stderr = log_dir / f"{name}.stderr"
        self.name = f"{name}@%h"
        selection = ["-Q", queues] if queues else []
        with self.stderr.open("wb") as stderr:
            self.process = subprocess.Popen(
                [*prefix, *command, *selection,
                 "-c", str(concurrency), "-n", self.name, "--without-mingle", "--without-gossip",
                 "--loglevel", "INFO", "--logfile", str(self.log)],
                env=env, cwd=cwd or log_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, start_new_session=True,
            )  # fmt: skip

    def stderr_text(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and " ready." in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.stderr_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crashed machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        self.kill()


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has ended, waiting for a SIGKILL sent to it to be delivered (a
    zombie has ended: nothing may reap it in a container)."""
    import psutil

    deadline = time.monotonic() + 60  # hang guard: a SIGKILL is delivered at once
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
