"""Warm measurement processes: one per (worker process, hardware kind, runtime), kept between jobs.

A measurement process (:mod:`dtf.benchmarking.child`) imports torch or
onnxruntime once and then measures job after job, fed one job at a time over
a pipe. It is ended, and the next job gets a fresh one, when it died (a crash,
the OOM killer), when an error poisoned its device, when a job ran past its
timeout in it, when its resident memory is over ``DTF_BENCH_MEMORY_MB`` after
a job, and by itself when idle for ``DTF_BENCH_IDLE_S`` seconds.

A callable runtime's process is kept per working directory as well: its
module is imported from there once, and another directory may hold other code.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from dtf.benchmarking.child import POISONED
from dtf.executor import reaper
from dtf.executor.child_env import child_env
from dtf.executor.lifetime import die_with_parent
from dtf.launch import python_module_command

#: Bytes of a crashed process's output quoted in its error.
OUTPUT_TAIL = 2000
#: Environment of every measurement process: weights come from disk, never from a hub.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
BUILTIN_RUNTIMES = ("pytorch", "onnxruntime")


def idle_s() -> float:
    """``DTF_BENCH_IDLE_S`` (default 600): a process with no job for this long ends."""
    return float(os.environ.get("DTF_BENCH_IDLE_S") or 600)


def memory_mb() -> float:
    """``DTF_BENCH_MEMORY_MB`` (default 8192): a process over this resident memory after a job
    is ended rather than given the next one."""
    return float(os.environ.get("DTF_BENCH_MEMORY_MB") or 8192)


class MeasurementProcess:
    """One ``dtf.benchmarking.child`` and the pipes to it."""

    def __init__(self, cwd: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dtf-bench-"))
        self.output_path = self.folder / "output"
        jobs_r, jobs_w = os.pipe()
        events_r, events_w = os.pipe()
        with self.output_path.open("wb") as output:
            self.process = subprocess.Popen(
                python_module_command(
                    "dtf.benchmarking.child",
                    str(jobs_r),
                    str(events_w),
                    f"{idle_s():g}",
                    keep_cwd=True,
                ),
                cwd=cwd,
                env=child_env(os.environ, OFFLINE),  # without dtf's settings and secrets
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
                pass_fds=(jobs_r, events_w),
            )
        reaper.keep(self.pid)  # it outlives the worker slot of the job that started it
        os.close(jobs_r)
        os.close(events_w)
        self.jobs = os.fdopen(jobs_w, "w", encoding="utf-8")
        self.events_fd = events_r
        self.buffer = b""
        self.last_used = time.monotonic()
        self.jobs_sent = 0
        self.output_start = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def measure(
        self, job: dict[str, Any], timeout: float
    ) -> tuple[list[dict[str, Any]], int | None, str, bool]:
        """Send ``job``; (its events, exit status or None while alive, output tail, timed out)."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + max(timeout, 0.1)
        self.jobs_sent += 1
        self.output_start = self.output_path.stat().st_size  # what this job's tail is after
        try:
            self.jobs.write(json.dumps(job) + "\n")
            self.jobs.flush()
        except OSError:  # BrokenPipeError: it ended
            return events, self.process.wait(), self.tail(), False
        while True:
            line = self._line(deadline)
            if line is None:  # the deadline
                self.stop()
                return events, self.process.returncode, self.tail(), True
            if line == b"":  # it ended: a crash, a kill, a poisoned device
                return events, self.process.wait(), self.tail(), False
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event["event"] == "done":
                self.last_used = time.monotonic()
                if event["code"] == POISONED:  # it ends itself; never used again
                    return events, self.process.wait(), self.tail(), False
                return events, None, "", False
            events.append(event)

    def _line(self, deadline: float) -> bytes | None:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not select.select([self.events_fd], [], [], min(left, 1.0))[0]:
                if self.process.poll() is not None:  # dead, though what it started holds the pipe
                    return b""
                continue
            chunk = os.read(self.events_fd, 65536)
            if not chunk:
                return b""  # a line cut short by a kill is dropped
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line + b"\n"

    def rss_mb(self) -> float:
        try:
            return psutil.Process(self.pid).memory_info().rss / 2**20
        except psutil.Error:
            return 0.0

    def tail(self) -> str:
        try:
            data = self.output_path.read_bytes()[self.output_start :][-OUTPUT_TAIL:]
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace")

    def stop(self) -> None:
        """End it (the whole session: what it started too) and forget its files."""
        if self.alive():
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        reaper.forget(self.pid)
        if self.events_fd >= 0:  # once: the number may belong to another file afterwards
            with contextlib.suppress(OSError):  # a broken pipe's unsent line
                self.jobs.close()
            os.close(self.events_fd)
            self.events_fd = -1
        shutil.rmtree(self.folder, ignore_errors=True)


class WarmPool:
    """The measurement processes of one worker process, by (hardware, runtime[, directory])."""

    def __init__(self) -> None:
        self.processes: dict[tuple[str, ...], MeasurementProcess] = {}
        self.lock = threading.Lock()
        self.started = 0  # processes started, over the pool's life

    @staticmethod
    def key(job: dict[str, Any], cwd: str) -> tuple[str, ...]:
        if job["runtime"] in BUILTIN_RUNTIMES:
            return (job["hardware"], job["runtime"])
        return (job["hardware"], job["runtime"], cwd)

    def take(self, job: dict[str, Any], cwd: str) -> tuple[MeasurementProcess, bool]:
        """The warm process for ``job`` or a fresh one; (process, whether it is fresh)."""
        with self.lock:
            key = self.key(job, cwd)
            process = self.processes.pop(key, None)
            if process is not None and (
                not process.alive()
                or time.monotonic() - process.last_used >= idle_s() - min(1.0, idle_s() / 10)
            ):
                process.stop()  # gone, or about to end by itself
                process = None
            if process is not None:
                return process, False
            self.started += 1
            return MeasurementProcess(cwd), True

    def give_back(self, job: dict[str, Any], cwd: str, process: MeasurementProcess) -> None:
        """Keep ``process`` for the next job, unless it ended or is over the memory ceiling."""
        if not process.alive() or process.rss_mb() > memory_mb():
            process.stop()
            return
        with self.lock:
            old = self.processes.pop(self.key(job, cwd), None)
            self.processes[self.key(job, cwd)] = process
        if old is not None:
            old.stop()

    def close(self) -> None:
        with self.lock:
            processes, self.processes = list(self.processes.values()), {}
        for process in processes:
            process.stop()


#: The pool of this (worker) process.
POOL = WarmPool()
atexit.register(POOL.close)
