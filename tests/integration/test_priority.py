"""Run priority on every broker: on a busy worker, a priority 9 run starts before a
priority 0 run sent earlier (Redis, RabbitMQ, the embedded filesystem broker)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from dtf.config import load_settings
from dtf.db.models import Batch
from tests.support.processes import WorkerProcess, clean_env, run_dtf

pytestmark = pytest.mark.integration

BLOCKER = """\
import pathlib
import time


def test_blocks_until_the_gate_opens():
    gate = pathlib.Path(__file__).parent / "gate"
    while not gate.exists():
        time.sleep(0.05)
"""


@pytest.fixture(params=["redis", "rabbitmq", "embedded"])
def broker_env(request, tmp_path) -> dict[str, str]:
    """What the CLI and the worker see: the broker under test, a database with the schema."""
    home = str(tmp_path / "home")
    if request.param == "redis":
        env = clean_env(
            DTF_BROKER_URL=request.getfixturevalue("redis_url"),
            DTF_DATABASE_URL=request.getfixturevalue("postgres_url"),
            DTF_HOME=home,
        )
    elif request.param == "rabbitmq":
        env = clean_env(
            DTF_BROKER_URL=request.getfixturevalue("rabbitmq_url"),
            DTF_DATABASE_URL=request.getfixturevalue("postgres_url"),
            DTF_HOME=home,
        )
    else:
        env = clean_env(DTF_HOME=home)  # filesystem broker and SQLite under DTF_HOME
        for folder in load_settings(env).folders():  # what `dtf run` makes before its workers
            folder.mkdir(parents=True, exist_ok=True)
    init = run_dtf("init-db", env=env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    return env


def database_url(env: dict[str, str]) -> str:
    return env.get("DTF_DATABASE_URL") or f"sqlite:///{env['DTF_HOME']}/dtf.sqlite"


def suite(folder: Path, *modules: str) -> Path:
    """A folder of test modules, each with one passing test."""
    folder.mkdir()
    for module in modules:
        (folder / f"test_{module}.py").write_text(f"def test_{module}():\n    pass\n")
    return folder


def submit(env: dict[str, str], cwd: Path, *args: str) -> str:
    proc = run_dtf("submit", ".", *args, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def batch_starts(env: dict[str, str]) -> list[tuple[str, str]]:
    """(run id, status) of every batch, in the order the batches started."""
    engine = create_engine(database_url(env))
    with engine.connect() as db:
        rows = db.execute(
            select(Batch.run_id, Batch.status, Batch.started_at).order_by(Batch.started_at)
        ).all()
    engine.dispose()
    return [(run_id, status) for run_id, status, started in rows if started is not None]


def wait_running(env: dict[str, str], run_id: str, guard_s: float = 120) -> None:
    """Until a batch of ``run_id`` runs (``guard_s``: only so that a broken set-up fails)."""
    deadline = time.monotonic() + guard_s
    while (run_id, "running") not in batch_starts(env):
        assert time.monotonic() < deadline, f"run {run_id} never started a batch"
        time.sleep(0.1)


def test_a_priority_9_run_starts_before_a_priority_0_run_sent_earlier(
    tmp_path, broker_env, start_worker
):
    start_worker(broker_env, queues="cpu", concurrency=1, name="busy")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "test_blocker.py").write_text(BLOCKER)
    low = suite(tmp_path / "low", "low_a", "low_b")
    high = suite(tmp_path / "high", "high_a", "high_b")

    blocking = submit(broker_env, blocker)
    wait_running(broker_env, blocking)  # the only worker slot is taken
    slow = submit(broker_env, low, "--priority", "0", "--batches", "2")
    urgent = submit(broker_env, high, "--priority", "9", "--batches", "2")
    (blocker / "gate").touch()

    for run_id, cwd in ((blocking, blocker), (slow, low), (urgent, high)):
        waited = run_dtf("wait", run_id, env=broker_env, cwd=cwd)
        assert waited.returncode == 0, waited.stdout + waited.stderr
    order = [run_id for run_id, _ in batch_starts(broker_env)]
    assert order == [blocking, urgent, urgent, slow, slow]


OLD_CONFIG = """\
from dtf.celeryconfig import *  # noqa: F403

task_queue_max_priority = None  # as dtf declared its queues before run priorities
"""


def test_a_rabbitmq_queue_declared_without_priority_is_named_with_what_to_do(
    tmp_path, rabbitmq_url, postgres_url, start_worker
):
    env = clean_env(
        DTF_BROKER_URL=rabbitmq_url, DTF_DATABASE_URL=postgres_url, DTF_HOME=str(tmp_path / "home")
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    (tmp_path / "old" / "oldconfig.py").parent.mkdir()
    (tmp_path / "old" / "oldconfig.py").write_text(OLD_CONFIG)
    path = ":".join(p for p in (str(tmp_path / "old"), env.get("PYTHONPATH")) if p)
    # A worker of a dtf before run priorities declared cpu and dtf.control plainly.
    start_worker({**env, "DTF_CELERY_CONFIG": "oldconfig", "PYTHONPATH": path}, name="old")
    project = suite(tmp_path / "project", "one")

    sent = run_dtf("submit", ".", env=env, cwd=project)

    assert sent.returncode == 3, sent.stdout + sent.stderr
    [line] = sent.stderr.strip().splitlines()
    assert "RabbitMQ queue 'cpu' was declared with other arguments than dtf's" in line
    assert "rabbitmqctl delete_queue -p dtf_test_" in line
    new = WorkerProcess(env, "cpu", 1, "new", tmp_path)
    try:
        assert new.process.wait(timeout=120) == 2
    finally:
        new.stop()
    refused = new.stderr_text()
    assert "Traceback" not in refused
    assert "dtf worker: RabbitMQ queue " in refused
    assert "delete it once it is empty" in refused
