"""A queue whose health check fails is drained, and taken back when the check passes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dtf.config import worker_queue
from tests.integration.test_worker_startup import (
    consumed_queues,
    node,
    registry,
    row_of,
    wait_for,
)
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration


def test_a_failing_check_stops_consuming_cpu_until_it_passes_again(
    tmp_path, redis_url, postgres_url, start_worker
):
    trigger = tmp_path / "fail-health"
    env = clean_env(
        DTF_BROKER_URL=redis_url,
        DTF_DATABASE_URL=postgres_url,
        DTF_HOME=str(tmp_path / "home"),
        DTF_HEALTH_INTERVAL="1",
        DTF_HEALTH_FAIL_FILE=str(trigger),
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    start_worker(env, queues="cpu", name="checked")
    always = {"dtf.control", worker_queue(node("checked"))}

    def consumes() -> set[str] | None:
        return consumed_queues(env, tmp_path, "checked")

    def row() -> dict:
        return registry(env, tmp_path).get(node("checked"), {})

    assert wait_for(consumes, "active_queues") == {"cpu", *always}
    assert wait_for(lambda: row().get("healthy_queues") == ["cpu"], "cpu healthy")

    trigger.write_text("")
    wait_for(lambda: consumes() == always, "cpu to be cancelled")
    bad = wait_for(lambda: row().get("bad_queues"), "cpu marked bad")
    assert bad == {"cpu": f"failed on purpose: DTF_HEALTH_FAIL_FILE {trigger} exists"}
    assert row()["healthy_queues"] == []
    assert row()["state"] == "online"

    trigger.unlink()
    wait_for(lambda: consumes() == {"cpu", *always}, "cpu to be consumed again")
    wait_for(lambda: row().get("healthy_queues") == ["cpu"], "cpu healthy again")
    assert row()["bad_queues"] == {}


SLOW_TEST = """
import pathlib, time

def test_runs_until_released():
    pathlib.Path("started.flag").write_text("started")
    while not pathlib.Path("release.flag").exists():
        time.sleep(0.1)
"""


def test_a_running_batch_finishes_while_its_queue_is_drained(
    tmp_path, redis_url, postgres_url, start_worker
):
    (tmp_path / "test_slow.py").write_text(SLOW_TEST)
    trigger = tmp_path / "fail-health"
    env = clean_env(
        DTF_BROKER_URL=redis_url,
        DTF_DATABASE_URL=postgres_url,
        DTF_HOME=str(tmp_path / "home"),
        DTF_HEALTH_INTERVAL="1",
        DTF_HEALTH_FAIL_FILE=str(trigger),
        DTF_HEARTBEAT_INTERVAL="1",
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    start_worker(env, queues="cpu", name="busy")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "dtf", "run", "test_slow.py"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: (tmp_path / "started.flag").exists(), "the batch to start", timeout=120)
    wait_for(
        lambda: row_of(env, tmp_path, "busy", active_tasks=1, state="online"),
        "the running batch in active_tasks",
    )

    trigger.write_text("cpu")
    always = {"dtf.control", worker_queue(node("busy"))}
    wait_for(lambda: consumed_queues(env, tmp_path, "busy") == always, "cpu to be cancelled")
    (tmp_path / "release.flag").write_text("go")

    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, (out, err)
    assert "1 passed" in out, out
