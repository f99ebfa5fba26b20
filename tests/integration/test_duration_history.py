"""Finished runs teach the planner how long tests take; the next run sends the slowest first."""

from __future__ import annotations

import json
import statistics

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from dtf.scheduling.durations import UNKNOWN_STARTUP_S, DurationHistory
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration


def test_the_second_run_puts_the_slow_test_first_and_alone(tmp_path):
    (tmp_path / "test_a_fast.py").write_text(
        "".join(f"def test_fast_{i}():\n    pass\n\n" for i in range(20))
    )
    (tmp_path / "test_z_slow.py").write_text(
        "import time\n\ndef test_slow():\n    time.sleep(1.5)\n\ndef test_quick():\n    pass\n"
    )
    env = clean_env()

    first = run_dtf("run", ".", "--workers", "2", env=env, cwd=tmp_path)
    second = run_dtf("run", ".", "--workers", "2", env=env, cwd=tmp_path)

    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    data = json.loads(run_dtf("results", env=env, cwd=tmp_path).stdout)
    by_batch: dict[str, list[str]] = {}
    for item in data["items"]:
        by_batch.setdefault(item["batch_id"], []).append(item["nodeid"])
    batches = sorted(data["batches"], key=lambda b: b["position"])
    assert by_batch[batches[0]["id"]] == ["test_z_slow.py::test_slow"]
    assert batches[0]["estimated_s"] >= 1.0
    assert all(b["estimated_s"] < batches[0]["estimated_s"] for b in batches[1:])

    status = json.loads(run_dtf("status", "--batches", "--json", env=env, cwd=tmp_path).stdout)
    slow_batch = status["batches"][0]
    assert slow_batch["test_s"] >= 1.5
    assert slow_batch["wall_s"] >= slow_batch["test_s"]
    assert slow_batch["attempts"] == 1


def test_the_planner_knows_how_long_a_batch_takes_to_start(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_a.py").write_text("def test_one():\n    pass\n")
    (suite / "test_b.py").write_text("def test_two():\n    pass\n")
    home = tmp_path / "home"
    env = clean_env(DTF_HOME=str(home))

    assert run_dtf("run", ".", "--workers", "1", env=env, cwd=suite).returncode == 0

    status = json.loads(run_dtf("status", "--batches", "--json", env=env, cwd=suite).stdout)
    measured = sorted(b["startup_s"] for b in status["batches"])
    engine = create_engine(f"sqlite:///{home / 'dtf.sqlite'}")
    with Session(engine) as session:
        history = DurationHistory.load(session, str(suite.resolve()), "cpu")
    engine.dispose()
    assert measured and history.startup_s == pytest.approx(statistics.median(measured), abs=0.01)
    assert DurationHistory({}).startup_s == UNKNOWN_STARTUP_S
