"""A test marked exclusive runs alone on its worker while the rest of the run goes on elsewhere."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select

from dtf.db.models import Batch, TestResult
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

TRACED = """
import json, os, time

def trace(name, seconds):
    start = time.time()
    time.sleep(seconds)
    with open(os.environ["TRACE_FILE"], "a") as out:
        out.write(json.dumps([name, start, time.time()]) + "\\n")
"""


def write_suite(root):
    (root / "tracing.py").write_text(TRACED)
    (root / "test_whole_machine.py").write_text(
        "import pytest\nfrom tracing import trace\n\n"
        "@pytest.mark.dtf(exclusive=True)\n"
        "def test_needs_the_whole_machine():\n    trace('exclusive', 2.0)\n"
    )
    for module in "abcdefgh":
        body = "".join(
            f"def test_{module}{i}():\n    trace('{module}{i}', 0.3)\n\n" for i in range(3)
        )
        (root / f"test_mod_{module}.py").write_text(f"from tracing import trace\n\n{body}")


def test_an_exclusive_test_has_its_worker_to_itself(
    tmp_path, redis_url, postgres_url, start_worker
):
    suite = tmp_path / "suite"
    suite.mkdir()
    write_suite(suite)
    trace_file = tmp_path / "trace.jsonl"
    env = clean_env(
        DTF_BROKER_URL=redis_url,
        DTF_DATABASE_URL=postgres_url,
        DTF_HOME=str(tmp_path / "home"),
        TRACE_FILE=str(trace_file),
    )
    assert run_dtf("init-db", env=env, cwd=tmp_path).returncode == 0
    start_worker(env, queues="cpu", concurrency=2, name="left")
    start_worker(env, queues="cpu", concurrency=2, name="right")

    # Small batches: whatever the exclusive test waits for on its worker (one
    # running batch), the other worker still has work while it runs.
    proc = run_dtf("run", ".", "--batches", "12", env=env, cwd=suite)

    assert proc.returncode == 0, proc.stderr
    spans = {name: (start, end) for name, start, end in map(json.loads, trace_file.open())}
    engine = create_engine(postgres_url)
    with engine.connect() as db:
        worker_of = {
            nodeid.split("::")[1].removeprefix("test_"): worker
            for nodeid, worker in db.execute(select(TestResult.nodeid, TestResult.worker))
        }
        sizes = {size for (size,) in db.execute(select(Batch.size))}
    engine.dispose()
    assert len(spans) == 25 and 1 in sizes
    alone_on = worker_of["needs_the_whole_machine"]
    start, end = spans["exclusive"]

    def overlaps(name: str) -> bool:
        other_start, other_end = spans[name]
        return other_start < end and other_end > start

    beside = [n for n in spans if n != "exclusive" and overlaps(n)]
    assert beside, "the rest of the run waited for the exclusive test"
    assert all(worker_of[n] != alone_on for n in beside), (worker_of, spans)


def test_batch_count_from_a_task_file_and_max_batch_seconds_from_the_cli(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    for module in "abcdef":
        (suite / f"test_{module}.py").write_text("def test_one():\n    pass\n")
    env = clean_env(DTF_HOME=str(tmp_path / "home"))
    task = {"type": "test", "paths": ["."], "batches": 3}
    (suite / "run.json").write_text(json.dumps({"tasks": [task]}))

    proc = run_dtf("run", "--task-file", "run.json", "--workers", "1", env=env, cwd=suite)

    assert proc.returncode == 0, proc.stderr
    batches = json.loads(run_dtf("status", "--json", "--batches", env=env, cwd=suite).stdout)
    assert len(batches["batches"]) == 3

    # Another project home: no duration history, each test is estimated at 0.1 s.
    env = clean_env(DTF_HOME=str(tmp_path / "fresh"))
    one_per_test = run_dtf(
        "run", ".", "--workers", "1", "--max-batch-seconds", "0.1", env=env, cwd=suite
    )

    assert one_per_test.returncode == 0, one_per_test.stderr
    batches = json.loads(run_dtf("status", "--json", "--batches", env=env, cwd=suite).stdout)
    assert len(batches["batches"]) == 6
