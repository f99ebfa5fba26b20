"""A real worker with DTF_METRICS_PORT serves /metrics: batches, tests by outcome and
their durations, summed over its prefork pool processes, scraped over HTTP."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select

from dtf.db.models import Batch
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

SUITE = {
    "test_a.py": (
        "import pytest\n\n"
        "def test_1(): pass\n\ndef test_2(): pass\n\ndef test_3(): pass\n\n"
        "def test_fails(): assert 1 == 2\n\n"
        "@pytest.mark.skip(reason='not here')\ndef test_skipped(): pass\n"
    ),
    "test_b.py": "def test_4(): pass\n\ndef test_5(): pass\n",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_a_worker_serves_metrics_of_what_its_pool_ran(
    tmp_path, redis_url, postgres_url, start_worker
):
    port = free_port()
    env = clean_env(
        DTF_BROKER_URL=redis_url,
        DTF_DATABASE_URL=postgres_url,
        DTF_HOME=str(tmp_path / "home"),
        DTF_METRICS_PORT=str(port),
        DTF_METRICS_ADDR="127.0.0.1",
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("")
    for name, body in SUITE.items():
        (suite / name).write_text(body)
    start_worker(env, queues="cpu", concurrency=2, name="metrics")
    assert scrape(port) is not None  # up before any work

    proc = run_dtf("run", ".", env=env, cwd=suite)
    assert proc.returncode == 1, proc.stderr

    engine = create_engine(postgres_url)
    with engine.connect() as db:
        batches = db.scalar(select(func.count()).select_from(Batch))
    engine.dispose()
    batch = (("hardware", "cpu"), ("kind", "batch"), ("queue", "cpu"))
    # The last task_postrun may land just after the run's verdict.
    deadline = time.monotonic() + 15
    while True:
        values = scrape(port)
        done = values.get(("dtf_tasks_finished_total", (*batch, ("status", "completed"))))
        if done == batches or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert done == batches >= 1
    assert values[("dtf_tasks_started_total", batch)] == batches
    assert values[("dtf_tests_total", (("outcome", "passed"), ("queue", "cpu")))] == 5
    assert values[("dtf_tests_total", (("outcome", "failed"), ("queue", "cpu")))] == 1
    assert values[("dtf_tests_total", (("outcome", "skipped"), ("queue", "cpu")))] == 1
    assert values[("dtf_test_duration_seconds_count", (("queue", "cpu"),))] == 7
    assert values[("dtf_task_duration_seconds_count", (("kind", "batch"), ("queue", "cpu")))] == (
        batches
    )
    assert values[("dtf_tasks_in_progress", (("kind", "batch"), ("queue", "cpu")))] == 0
