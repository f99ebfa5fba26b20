"""A waiting `dtf run` that loses its broker or its workers says so and exits 3; results stay."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

SLOW_SUITE = """
import time

def test_quick():
    pass

def test_slow():
    time.sleep(120)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis():
    """A Redis server of this test's own, so the test can take it away."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no"], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield server, f"redis://127.0.0.1:{port}/0"
    server.kill()
    server.wait()


def wait_for_result(env, cwd, nodeid: str, timeout: float = 60) -> None:
    """Until the run has stored a result for `nodeid` (the planned items name it sooner)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = run_dtf("results", env=env, cwd=cwd)
        stored = json.loads(proc.stdout)["results"] if proc.returncode == 0 else []
        if nodeid in {r["nodeid"] for r in stored}:
            return
        time.sleep(0.5)
    raise AssertionError(f"no result for {nodeid}")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "test_slow.py").write_text(SLOW_SUITE)
    return tmp_path


def start_waiting_run(project, env, start_worker, name: str):
    """A worker, and a `dtf run` waiting on it once the first result is stored."""
    assert run_dtf("init-db", env=env, cwd=project).returncode == 0
    worker = start_worker(env, queues="cpu", name=name)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "dtf", "run", "."], env=env, cwd=project,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_result(env, project, "test_slow.py::test_quick")
    return worker, waiting


def test_losing_the_broker_ends_the_wait_with_exit_3(
    project, private_redis, postgres_url, start_worker
):
    server, broker = private_redis
    env = clean_env(DTF_BROKER_URL=broker, DTF_DATABASE_URL=postgres_url, DTF_LIVENESS_INTERVAL="1")
    _, waiting = start_waiting_run(project, env, start_worker, "solo")

    server.kill()
    out, err = waiting.communicate(timeout=60)

    assert waiting.returncode == 3, out + err
    assert "cannot reach the broker" in err
    assert "dtf wait" in err
    assert "Traceback" not in out + err
    data = json.loads(run_dtf("results", env=env, cwd=project).stdout)
    assert {r["nodeid"]: r["outcome"] for r in data["results"]} == {
        "test_slow.py::test_quick": "passed"
    }


def test_losing_every_worker_of_a_queue_ends_the_wait_with_exit_3(
    project, redis_url, postgres_url, start_worker
):
    env = clean_env(
        DTF_BROKER_URL=redis_url, DTF_DATABASE_URL=postgres_url, DTF_LIVENESS_INTERVAL="1"
    )
    worker, waiting = start_waiting_run(project, env, start_worker, "doomed")

    worker.kill()
    out, err = waiting.communicate(timeout=60)

    assert waiting.returncode == 3, out + err
    assert "no live worker consumes queue 'cpu' any more" in err
    assert "Traceback" not in out + err


def test_the_client_never_subscribes_to_task_results(redis_url, tmp_path):
    # A subscription is dropped from AsyncResult.__del__, wherever the garbage collector
    # runs it; with the broker gone, that raised in the middle of `dtf run`'s wait.
    code = """
from dtf.celery_app import app
from dtf.submission import _no_result_subscriptions
_no_result_subscriptions()
sent = app.signature("dtf.nothing").apply_async(queue="dtf-test-unconsumed")
pubsub = app.backend.result_consumer._pubsub
print(bool(pubsub is not None and pubsub.subscribed))
"""
    env = clean_env(DTF_BROKER_URL=redis_url, DTF_HOME=str(tmp_path / "home"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        env=env,
    ).stdout  # fmt: skip
    assert out.strip() == "False"
