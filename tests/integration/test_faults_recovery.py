"""Fault tests with real processes: what recovery does when tests and workers break.

Each test stands up Redis/PostgreSQL-backed workers, breaks something for real (a test
that exits, aborts, hangs or eats memory; a worker whose process group is SIGKILLed) and
checks that every test ends with exactly one final result and that ``dtf recovery
stats`` shows a recorded recovery for each failure class exercised.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
from sqlalchemy import create_engine, func, select

from dtf.db.models import Attempt, RecoveryEvent, TestResult
from tests.support.processes import clean_env, recovery_stats, run_dtf

pytestmark = pytest.mark.integration

FAULTS = """
import os, time

def test_before():
    pass

def test_exit():
    os._exit(3)

def test_abort():
    os.abort()

def test_hang():
    time.sleep(600)

def test_memory():
    blocks = []
    while True:
        blocks.append(bytearray(16 * 1024 * 1024))

def test_after():
    pass
"""


@pytest.fixture
def cluster(tmp_path, redis_url, postgres_url):
    env = clean_env(
        DTF_BROKER_URL=redis_url,
        DTF_DATABASE_URL=postgres_url,
        DTF_HOME=str(tmp_path / "home"),
        DTF_HEARTBEAT_INTERVAL="1",
        DTF_RECONCILE_INTERVAL="1",
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    return env


def wait_finished(env, cwd, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = run_dtf("status", run_id, "--json", env=env, cwd=cwd)
        status = json.loads(proc.stdout) if proc.returncode == 0 else {}
        if status.get("status") in ("passed", "failed", "error"):
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish in {timeout}s")


def test_crash_abort_hang_and_memory_are_isolated_and_the_rest_runs(
    tmp_path, cluster, start_worker
):
    (tmp_path / "test_faults.py").write_text(FAULTS)
    task = {"type": "test", "paths": ["test_faults.py"], "timeout": 3, "memory_limit_mb": 700}
    (tmp_path / "run.json").write_text(json.dumps({"tasks": [task]}))
    start_worker(cluster, queues="cpu", name="faulty")

    submitted = run_dtf("submit", "--task-file", "run.json", env=cluster, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    status = wait_finished(cluster, tmp_path, submitted.stdout.strip())

    assert status["counts"] == {
        "passed": 2, "crashed": 2, "timed_out": 1, "out_of_memory": 1,
    }  # fmt: skip
    results = json.loads(run_dtf("results", env=cluster, cwd=tmp_path).stdout)["results"]
    by_test = {r["nodeid"].split("::")[1]: r for r in results}
    assert len(results) == len(by_test) == 6, "one result per test"
    assert by_test["test_exit"]["outcome"] == "crashed"
    assert "exited with code 3" in by_test["test_exit"]["longrepr"]
    assert "SIGABRT" in by_test["test_abort"]["longrepr"]
    assert by_test["test_hang"]["outcome"] == "timed_out"
    assert by_test["test_memory"]["outcome"] == "out_of_memory"
    assert "MemoryError" in by_test["test_memory"]["longrepr"]
    # the worker survived all of it and is still serving
    workers = json.loads(run_dtf("workers", "--json", env=cluster, cwd=tmp_path).stdout)
    assert [w["state"] for w in workers] == ["online"]

    events = json.loads(run_dtf("recovery", "events", "--json", env=cluster, cwd=tmp_path).stdout)
    isolated = {e["nodeid"].split("::")[1]: e for e in events if e["strategy"] == "isolate_test"}
    assert set(isolated) == {"test_exit", "test_abort", "test_hang", "test_memory"}
    assert all(e["level"] == 3 and e["status"] == "succeeded" for e in isolated.values())
    # escalation: a crash was first retried in place (level 1) and that failed
    first_exit = next(e for e in events if e["nodeid"].endswith("test_exit"))
    assert (first_exit["strategy"], first_exit["status"]) == ("retry_test", "failed")
    # a hang never starts at level 1
    assert min(e["level"] for e in events if e["failure_class"] == "hang") >= 2

    classes = recovery_stats(cluster, tmp_path)
    assert {"crash", "hang", "oom"} <= set(classes)
    assert "isolate_test" in classes["crash"]


BLOCKING = """
import os, pathlib, time

def test_a():
    pass

def test_b_blocks_on_first_attempt():
    flag = pathlib.Path(os.environ["FLAG_DIR"]) / "started.flag"
    if not flag.exists():
        flag.write_text(str(os.getpid()))
        time.sleep(600)

def test_c():
    pass
"""


def test_sigkill_of_a_worker_process_group_reassigns_its_batch(tmp_path, cluster, start_worker):
    (tmp_path / "test_blocking.py").write_text(BLOCKING)
    env = {**cluster, "FLAG_DIR": str(tmp_path)}
    first = start_worker(env, queues="cpu", name="doomed")
    second = start_worker(env, queues="cpu", name="survivor")
    submitted = run_dtf("submit", "test_blocking.py", env=env, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    # The person waiting for the run, as a CI job would.
    waiting = subprocess.Popen(
        [sys.executable, "-m", "dtf", "wait", run_id], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    flag = tmp_path / "started.flag"
    deadline = time.monotonic() + 60
    while not (flag.exists() and flag.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = psutil.Process(int(flag.read_text()))  # the pytest child running the batch
    ancestors = {p.pid for p in child.parents()}
    victim = first if first.process.pid in ancestors else second
    os.killpg(victim.process.pid, signal.SIGKILL)  # the whole worker, as a dead machine
    victim.process.wait()

    status = wait_finished(env, tmp_path, run_id, timeout=90)

    assert status["status"] == "passed"
    assert status["counts"] == {"passed": 3}
    engine = create_engine(env["DTF_DATABASE_URL"])
    with engine.connect() as db:
        assert db.scalar(select(func.count()).select_from(TestResult)) == 3
        attempts = db.execute(select(Attempt.worker, Attempt.status).order_by(Attempt.id)).all()
        events = db.execute(
            select(RecoveryEvent.failure_class, RecoveryEvent.strategy, RecoveryEvent.status)
        ).all()
    engine.dispose()
    lost = [w for w, s in attempts if s == "lost"]
    assert lost and lost[0].startswith(victim.name.split("@")[0] + "@")
    survivor = second if victim is first else first
    completed = [w for w, s in attempts if s == "completed"]
    assert any(w.startswith(survivor.name.split("@")[0] + "@") for w in completed)
    assert ("worker_lost", "succeeded") in {(c, s) for c, _, s in events}
    assert "worker_lost" in recovery_stats(env, tmp_path)
    # Told as it happened, and in the summary, status and JSON report.
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, out + err
    victim_name = victim.name.split("@")[0] + "@"
    assert re.search(rf"dtf: worker {victim_name}\S* lost \(.*\) while running \d+ tests?", err)
    assert re.search(r"dtf: sent \d+ tests? again to queue \S+ \(\w+\)", err)
    assert "recovered: 1 lost worker" in out
    shown = json.loads(run_dtf("status", run_id, "--json", env=env, cwd=tmp_path).stdout)
    (recovery,) = [r for r in shown["recoveries"] if r["failure_class"] == "worker_lost"]
    assert recovery["started_at"] and recovery["worker"].startswith(victim_name)
    report = json.loads(run_dtf("report", run_id, "--format", "json", env=env, cwd=tmp_path).stdout)
    assert [r["id"] for r in report["recoveries"]] == [r["id"] for r in shown["recoveries"]]


def test_several_workers_noticing_the_same_lost_worker_send_its_batch_again_once(
    tmp_path, cluster, start_worker
):
    """Three survivors reconcile at every heartbeat (1 s) and all see the same lost
    worker at once: one of them claims the attempt, the batch is sent again once."""
    (tmp_path / "test_blocking.py").write_text(BLOCKING)
    env = {**cluster, "FLAG_DIR": str(tmp_path), "DTF_RECONCILE_INTERVAL": ""}
    workers = [start_worker(env, queues="cpu", name=f"w{i}") for i in range(4)]
    submitted = run_dtf("submit", "test_blocking.py", env=env, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    flag = tmp_path / "started.flag"
    while not (flag.exists() and flag.read_text()):
        assert all(w.process.poll() is None for w in workers)
        time.sleep(0.1)
    ancestors = {p.pid for p in psutil.Process(int(flag.read_text())).parents()}
    victim = next(w for w in workers if w.process.pid in ancestors)
    os.killpg(victim.process.pid, signal.SIGKILL)
    victim.process.wait()

    status = wait_finished(env, tmp_path, run_id, timeout=90)

    assert status["counts"] == {"passed": 3}
    engine = create_engine(env["DTF_DATABASE_URL"])
    with engine.connect() as db:
        attempts = db.execute(select(Attempt.batch_id, Attempt.status)).all()
        lost_events = db.scalar(
            select(func.count())
            .select_from(RecoveryEvent)
            .where(RecoveryEvent.failure_class == "worker_lost")
        )
    engine.dispose()
    lost_batch = next(b for b, s in attempts if s == "lost")
    assert sorted(s for b, s in attempts if b == lost_batch) == ["completed", "lost"]
    assert lost_events == 1
