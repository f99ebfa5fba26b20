"""Flower (`celery -A dtf flower`) against the real broker and a real worker.

Flower learns about tasks from the task events the workers and `dtf submit`
send (celeryconfig.py turns them on) and about workers from broadcast
`inspect` calls; its HTTP API is read here as an operator's script would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from sqlalchemy import create_engine, select

from dtf.config import CONTROL_QUEUE, worker_queue
from dtf.db.models import Batch
from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _eventually(probe: Callable[[], object], what: str, timeout: float = 60) -> object:
    """The first truthy value of ``probe()``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            value = probe()
            if value:
                return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def flower(tmp_path, cluster_env) -> Iterator[str]:
    """`celery -A dtf flower` on a free local port; yields its base URL."""
    # Flower 2 refuses its HTTP API without authentication unless told otherwise.
    with running_flower(tmp_path, {**cluster_env, "FLOWER_UNAUTHENTICATED_API": "true"}) as base:
        yield base


@contextlib.contextmanager
def running_flower(tmp_path, env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "flower.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dtf", "flower",
             f"--port={port}", "--address=127.0.0.1"],
            env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, f"flower exited: {log.read_text()[-2000:]}"
            return requests.get(f"{base}/healthcheck", timeout=2).text == "OK"

        _eventually(healthy, "flower to answer")
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _get(base: str, path: str) -> dict:
    response = requests.get(f"{base}{path}", timeout=15)
    response.raise_for_status()
    return response.json()


def test_flower_shows_dtf_workers_queues_and_readable_tasks(
    tmp_path, cluster_env, start_worker, flower
):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_three.py").write_text(
        "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n\n\ndef test_c():\n    pass\n"
    )
    start_worker(cluster_env, queues="cpu", name="flw")

    # Flower's event receiver is listening once it has heard the worker's heartbeat.
    def heard_worker() -> str | None:
        seen = [w["hostname"] for w in _get(flower, "/workers?json=1")["data"]]
        return next((name for name in seen if name.startswith("flw@")), None)

    hostname = _eventually(heard_worker, "flower to hear the worker's heartbeat")

    submitted = run_dtf("submit", ".", env=cluster_env, cwd=suite)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    waited = run_dtf("wait", run_id, env=cluster_env, cwd=suite)
    assert waited.returncode == 0, waited.stdout + waited.stderr

    engine = create_engine(cluster_env["DTF_DATABASE_URL"])
    with engine.connect() as db:
        (batch_id,) = db.scalars(select(Batch.id).filter_by(run_id=run_id)).all()
    engine.dispose()

    # The batch, as Flower lists it: its name and the run, part, queue and size of it.
    def batch_done() -> dict | None:
        tasks = _get(flower, "/api/tasks?taskname=dtf.execute_batch")
        task = tasks.get(batch_id)
        return task if task and task["state"] == "SUCCESS" else None

    listed = _eventually(batch_done, "flower to see the batch succeed")
    assert listed["name"] == "dtf.execute_batch"
    assert listed["args"] == f"run={run_id} batch=1/1 queue=cpu tests=3"
    assert listed["worker"] == hostname

    info = _get(flower, f"/api/task/info/{batch_id}")
    assert info["name"] == "dtf.execute_batch"
    assert info["args"] == listed["args"]
    assert info["kwargs"] == "{}"
    assert info["routing_key"] == "cpu"
    assert "'passed': 3" in info["result"]

    # The chord callback is shown by its run, not by the list of every batch's result.
    finalize = _eventually(
        lambda: _get(flower, f"/api/task/info/finalize-{run_id}").get("succeeded"),
        "flower to see finalize_run succeed",
    )
    assert finalize
    finalize_info = _get(flower, f"/api/task/info/finalize-{run_id}")
    assert finalize_info["name"] == "dtf.finalize_run"
    assert finalize_info["args"] == f"run={run_id} headers=1"

    # The worker, with the queues it consumes and dtf's tasks.
    worker = _get(flower, "/api/workers?refresh=1")[hostname]
    queues = {q["name"] for q in worker["active_queues"]}
    assert queues == {"cpu", CONTROL_QUEUE, worker_queue(hostname)}
    assert {"dtf.execute_batch", "dtf.finalize_run"} <= set(worker["registered"])
    lengths = _get(flower, "/api/queues/length")["active_queues"]
    assert {q["name"]: q["messages"] for q in lengths}["cpu"] == 0


def test_flower_with_basic_auth_as_docker_compose_sets_it_refuses_anonymous_readers(
    tmp_path, cluster_env
):
    """docker-compose.yml gives Flower FLOWER_BASIC_AUTH from DTF_FLOWER_USER and
    DTF_FLOWER_PASSWORD: its pages and API (task arguments, results) need them."""
    env = {**cluster_env, "FLOWER_BASIC_AUTH": "ops:s3cret-Pass"}
    with running_flower(tmp_path, env) as base:
        anonymous = requests.get(f"{base}/tasks/datatable", timeout=10)
        wrong = requests.get(f"{base}/api/workers", auth=("ops", "guess"), timeout=10)
        allowed = requests.get(f"{base}/api/workers", auth=("ops", "s3cret-Pass"), timeout=10)
    assert (anonymous.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200)
