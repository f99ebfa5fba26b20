"""Work stealing: at the end of a run, a batch hands the tests it has not started to an
idle worker slot, and the run finishes with every test run exactly once."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlalchemy import create_engine, select

from dtf.db.models import Batch, TestItem, TestResult
from tests.support.processes import run_dtf

pytestmark = pytest.mark.integration

SUITE = """
import json, os, time
import pytest

@pytest.mark.parametrize("n", range(30))
def test_step(n):
    start = time.time()
    time.sleep(0.2)
    with open(os.environ["TRACE_FILE"], "a") as out:
        out.write(json.dumps([n, os.getpid(), start, time.time()]) + "\\n")
"""


def test_one_planned_batch_is_shared_by_two_slots(tmp_path, cluster_env, postgres_url):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_steps.py").write_text(SUITE)
    trace_file = tmp_path / "trace.jsonl"
    env = {**cluster_env, "TRACE_FILE": str(trace_file)}

    # One batch of 6 s planned for two slots: the idle slot takes over half of its tail.
    proc = run_dtf("run", ".", "--workers", "2", "--batches", "1", env=env, cwd=suite)

    assert proc.returncode == 0, proc.stderr
    assert "30 passed" in proc.stderr + proc.stdout
    engine = create_engine(postgres_url)
    with engine.connect() as db:
        batches = db.execute(select(Batch.id, Batch.size, Batch.status)).all()
        results = Counter(db.scalars(select(TestResult.nodeid)))
        batch_of = dict(db.execute(select(TestItem.nodeid, TestItem.batch_id)).all())
    engine.dispose()
    assert len(batches) >= 2 and {status for _, _, status in batches} == {"done"}
    assert sum(size for _, size, _ in batches) == 30
    assert len(results) == 30 and set(results.values()) == {1}, results
    spans = [json.loads(line) for line in trace_file.open()]
    assert sorted(n for n, *_ in spans) == list(range(30))
    # Tests of different batches ran at the same time.
    by_batch = {}
    for n, _pid, start, end in spans:
        by_batch.setdefault(batch_of[f"test_steps.py::test_step[{n}]"], []).append((start, end))
    first, second, *_ = sorted(by_batch.values(), key=len, reverse=True)
    assert any(a < d and c < b for a, b in first for c, d in second), by_batch
