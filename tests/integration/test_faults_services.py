"""Fault tests: the broker restarted and the database cut off in the middle of a run.

Redis is a private ``redis-server`` on a port of its own, with persistence or without; the
database is the real PostgreSQL behind a TCP proxy the test cuts and restores.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time

import pytest

from tests.support.processes import clean_env, recovery_stats, run_dtf
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def slow_suite(tests: int) -> str:
    return "\n".join(
        f"def test_{i}():\n    import time\n    time.sleep(0.4)\n" for i in range(tests)
    )


SLOW_SUITE = slow_suite(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server in ``folder``, stopped and started: with append-only persistence,
    or without any (a restart forgets every queued message)."""

    def __init__(self, folder, *, persistent: bool = True) -> None:
        self.folder, self.port = folder, free_port()
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--appendonly", "yes" if self.persistent else "no", "--dir", str(self.folder),
             "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run(["redis-cli", "-p", str(self.port), "shutdown"], capture_output=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def wait_status(env, cwd, run_id, predicate, timeout=90) -> dict:
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        proc = run_dtf("status", run_id, "--json", env=env, cwd=cwd)
        if proc.returncode == 0:
            status = json.loads(proc.stdout)
            if predicate(status):
                return status
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} never got there: {status}")


def finished(status: dict) -> bool:
    return status.get("status") in ("passed", "failed", "error")


def test_redis_restarted_mid_run_loses_nothing(tmp_path, postgres_url, start_worker):
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        env = clean_env(
            DTF_BROKER_URL=f"redis://127.0.0.1:{redis.port}/0",
            DTF_DATABASE_URL=postgres_url,
            DTF_HOME=str(tmp_path / "home"),
            DTF_HEARTBEAT_INTERVAL="1",
            DTF_RECONCILE_INTERVAL="1",
        )
        assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
        (tmp_path / "test_slow.py").write_text(SLOW_SUITE)
        start_worker(env, queues="cpu", name="steady")
        run_id = run_dtf("submit", "test_slow.py", "--grouping", "none", env=env,
                         cwd=tmp_path).stdout.strip()  # fmt: skip
        wait_status(env, tmp_path, run_id, lambda s: s.get("finished", 0) >= 1)

        redis.stop()
        time.sleep(2)
        redis.start()

        status = wait_status(env, tmp_path, run_id, finished, timeout=90)
        assert status["counts"] == {"passed": 10}
        assert status["status"] == "passed"
        results = json.loads(run_dtf("results", run_id, env=env, cwd=tmp_path).stdout)["results"]
        assert len({r["nodeid"] for r in results}) == len(results) == 10
        assert "broker_unreachable" in recovery_stats(env, tmp_path)
    finally:
        redis.stop()


def test_postgres_cut_off_while_results_arrive_loses_none(
    tmp_path, redis_url, postgres_url, start_worker
):
    proxy = TcpProxy()
    proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    env = clean_env(
        DTF_BROKER_URL=redis_url, DTF_DATABASE_URL=postgres_url, DTF_HOME=str(tmp_path / "h")
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    # Long enough that results keep arriving while the database is cut off.
    (tmp_path / "test_slow.py").write_text(slow_suite(20))
    worker_env = {**env, "DTF_DATABASE_URL": proxied, "DTF_HEARTBEAT_INTERVAL": "2"}
    start_worker(worker_env, queues="cpu", name="patient")
    run_id = run_dtf("submit", "test_slow.py", env=worker_env, cwd=tmp_path).stdout.strip()
    wait_status(env, tmp_path, run_id, lambda s: s.get("finished", 0) >= 1)

    proxy.cut()
    time.sleep(3)
    proxy.restore()

    status = wait_status(env, tmp_path, run_id, finished, timeout=120)
    assert status["counts"] == {"passed": 20}
    results = json.loads(run_dtf("results", run_id, env=env, cwd=tmp_path).stdout)["results"]
    assert len({r["nodeid"] for r in results}) == len(results) == 20
    assert "db_unreachable" in recovery_stats(env, tmp_path)
    proxy.cut()


def test_batches_a_restarted_redis_forgot_are_sent_again_from_evidence(
    tmp_path, postgres_url, start_worker
):
    """No persistence: the queued batches' messages are gone with the restart. The
    grace period is an hour here: only the broker's evidence can bring them back."""
    redis = PrivateRedis(tmp_path, persistent=False)
    redis.start()
    try:
        env = clean_env(
            DTF_BROKER_URL=f"redis://127.0.0.1:{redis.port}/0",
            DTF_DATABASE_URL=postgres_url,
            DTF_HOME=str(tmp_path / "home"),
            DTF_HEARTBEAT_INTERVAL="1",
            DTF_RECONCILE_GRACE="3600",
            # Each batch keeps its tests: a running one does not take the lost ones' tests.
            DTF_HANDOFF="0",
        )
        assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
        # Two tasks, a batch each, one worker slot: one batch runs, the other waits queued.
        (tmp_path / "test_a.py").write_text(SLOW_SUITE)
        (tmp_path / "test_b.py").write_text(SLOW_SUITE)
        (tmp_path / "run.json").write_text(json.dumps({"tasks": [
            {"type": "test", "paths": ["test_a.py"]}, {"type": "test", "paths": ["test_b.py"]},
        ]}))  # fmt: skip
        start_worker(env, queues="cpu", name="steady")
        submitted = run_dtf("submit", "--task-file", "run.json", env=env, cwd=tmp_path)
        run_id = submitted.stdout.strip().splitlines()[-1]
        wait_status(env, tmp_path, run_id, lambda s: s.get("finished", 0) >= 1)

        redis.stop()
        redis.start()

        status = wait_status(env, tmp_path, run_id, finished, timeout=240)
        assert status["counts"] == {"passed": 20}
        results = json.loads(run_dtf("results", run_id, env=env, cwd=tmp_path).stdout)["results"]
        assert len({r["nodeid"] for r in results}) == len(results) == 20
        events = run_dtf("recovery", "events", run_id, "--json", env=env, cwd=tmp_path)
        assert "no longer in the broker" in events.stdout, events.stdout + events.stderr
    finally:
        redis.stop()
