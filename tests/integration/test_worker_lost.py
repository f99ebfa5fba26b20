"""At-least-once: a batch whose worker process dies runs again, and no test counts twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

SUITE = """
import os, pathlib, time

def test_first():
    pass

def test_blocks_on_first_attempt():
    flag = pathlib.Path("started.flag")
    if not flag.exists():
        flag.write_text(str(os.getpid()))
        time.sleep(600)

def test_last():
    pass
"""


def test_a_killed_worker_process_leads_to_a_rerun_that_counts_each_test_once(
    tmp_path, redis_url, postgres_url, start_worker
):
    (tmp_path / "test_lost.py").write_text(SUITE)
    env = clean_env(DTF_BROKER_URL=redis_url, DTF_DATABASE_URL=postgres_url)
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    start_worker(env, queues="cpu", name="fragile")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "dtf", "run", "test_lost.py"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    flag = tmp_path / "started.flag"
    deadline = time.monotonic() + 120
    while not (flag.exists() and flag.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = psutil.Process(int(flag.read_text()))  # the pytest child running the batch
    child.parent().send_signal(signal.SIGKILL)  # the Celery pool process that started it

    out, err = waiting.communicate(timeout=180)
    assert waiting.returncode == 0, (out, err)
    data = json.loads(run_dtf("results", env=env, cwd=tmp_path).stdout)
    assert data["summary"]["counts"] == {"passed": 3}
    assert sorted(r["nodeid"] for r in data["results"]) == [
        "test_lost.py::test_blocks_on_first_attempt",
        "test_lost.py::test_first",
        "test_lost.py::test_last",
    ]
    attempts = sorted(len(batch["attempts"]) for batch in data["batches"])
    assert attempts[-1] == 2, "the batch of the killed process ran a second time"
    assert attempts[:-1] == [1] * (len(attempts) - 1)
