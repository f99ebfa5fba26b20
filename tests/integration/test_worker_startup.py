"""Worker startup: queues from detected hardware, refusals, the registry and its states."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dtf.config import worker_queue
from tests.support.processes import WorkerProcess, clean_env, run_dtf

pytestmark = pytest.mark.integration


def node(name: str) -> str:
    """The node name Celery makes of ``-n NAME@%h``."""
    return f"{name}@{socket.gethostname()}"


def wait_for(probe: Callable[[], object], what: str, timeout: float = 60) -> object:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def consumed_queues(env: dict[str, str], cwd: Path, name: str) -> set[str] | None:
    """The queues worker ``name`` consumes, from ``celery inspect active_queues``."""
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "dtf", "inspect", "active_queues",
         "-d", node(name), "-j", "-t", "5"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if proc.returncode != 0:
        return None
    replies = json.loads(proc.stdout)
    return {queue["name"] for queue in replies.get(node(name), [])}


def registry(env: dict[str, str], cwd: Path) -> dict[str, dict]:
    """``dtf workers --json``, by hostname."""
    proc = run_dtf("workers", "--json", env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return {row["hostname"]: row for row in json.loads(proc.stdout)}


def row_of(env: dict[str, str], cwd: Path, name: str, **expected) -> dict | None:
    """The registry row of ``name`` once its fields equal ``expected``."""
    row = registry(env, cwd).get(node(name))
    if row and all(row[key] == value for key, value in expected.items()):
        return row
    return None


class BareWorker(WorkerProcess):
    """``celery -A dtf worker`` without -Q: it picks its queues itself."""

    def __init__(self, env: dict[str, str], name: str, log_dir: Path, concurrency: int) -> None:
        self.log = log_dir / f"{name}.log"
        self.name = f"{name}@%h"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dtf", "worker", "-c", str(concurrency),
             "-n", self.name, "--without-mingle", "--without-gossip",
             "--loglevel", "INFO", "--logfile", str(self.log)],
            env=env, cwd=log_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip


@pytest.fixture
def env(tmp_path, redis_url, postgres_url) -> dict[str, str]:
    env = clean_env(
        DTF_BROKER_URL=redis_url,
        DTF_DATABASE_URL=postgres_url,
        DTF_HOME=str(tmp_path / "home"),
        DTF_HEARTBEAT_INTERVAL="1",
    )
    init = run_dtf("init-db", env=env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    return env


@pytest.fixture
def bare_worker(tmp_path) -> Iterator[Callable[..., BareWorker]]:
    started: list[BareWorker] = []

    def start(env: dict[str, str], name: str, concurrency: int = 2) -> BareWorker:
        worker = BareWorker(env, name, tmp_path, concurrency)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_a_worker_without_q_serves_its_hardware_registers_and_is_lost_when_killed(
    tmp_path, env, bare_worker
):
    worker = bare_worker(env, "plain", concurrency=2)

    queues = wait_for(lambda: consumed_queues(env, tmp_path, "plain"), "active_queues")
    assert queues == {"cpu", "dtf.control", worker_queue(node("plain"))}
    row = wait_for(lambda: row_of(env, tmp_path, "plain", state="online"), "registration")
    assert row["queues"] == ["cpu"]
    assert row["healthy_queues"] == ["cpu"]
    assert row["hardware"][0] == "cpu"
    assert row["inventory"]["hostname"] == socket.gethostname()
    assert row["inventory"]["cpu"]["threads"] >= 1
    assert row["concurrency"] == 2
    assert row["active_tasks"] == 0
    assert row["pid"] == worker.process.pid
    assert row["queue_health"]["cpu"]["ok"] is True

    worker.kill()
    wait_for(lambda: row_of(env, tmp_path, "plain", state="lost"), "the killed worker to be lost")


def test_q_cuda_without_a_gpu_refuses_to_start_with_one_line(tmp_path, env):
    from dtf.workers.detection.detect import detect_inventory

    if "cuda" in detect_inventory(kinds=["cuda"]).kinds():
        pytest.skip("this machine has a CUDA device")
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "dtf", "worker", "-Q", "cuda", "-n", "refused@%h",
         "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
        env={**env, "PYTHONWARNINGS": "ignore"},  # Celery's warning about running as root
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dtf worker: refusing queue 'cuda': no cuda on this machine (")
    assert lines[0].endswith("set DTF_FORCE_QUEUES=cuda to serve it anyway")
    assert node("refused") not in registry(env, tmp_path)


def test_a_forced_cuda_queue_is_served_and_a_warm_shutdown_goes_offline(
    tmp_path, env, start_worker
):
    worker = start_worker({**env, "DTF_FORCE_QUEUES": "cuda"}, queues="cuda,nightly", name="gpu")

    queues = wait_for(lambda: consumed_queues(env, tmp_path, "gpu"), "active_queues")
    assert queues == {"cuda", "nightly", "dtf.control", worker_queue(node("gpu"))}
    row = wait_for(lambda: row_of(env, tmp_path, "gpu", state="online"), "registration")
    assert row["queues"] == ["cuda", "nightly"]
    assert row["healthy_queues"] == ["cuda", "nightly"]
    assert row["queue_health"]["cuda"]["reason"] == "forced by DTF_FORCE_QUEUES, not checked"

    worker.stop()
    assert worker.process.returncode == 0
    assert row_of(env, tmp_path, "gpu", state="offline")


def test_an_unreachable_database_does_not_stop_the_worker(tmp_path, redis_url, bare_worker):
    env = clean_env(
        DTF_BROKER_URL=redis_url,
        DTF_DATABASE_URL="postgresql+psycopg2://postgres@127.0.0.1:1/nowhere",
        DTF_HEARTBEAT_INTERVAL="1",
    )
    worker = bare_worker(env, "cutoff", concurrency=1)

    wait_for(
        lambda: "cannot update the worker registry (will retry)" in worker.log.read_text(),
        "the registry failure in the log",
    )
    assert wait_for(lambda: consumed_queues(env, tmp_path, "cutoff"), "active_queues") == {
        "cpu", "dtf.control", worker_queue(node('cutoff'))
    }  # fmt: skip
    assert worker.process.poll() is None
