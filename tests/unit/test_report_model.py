"""The report model: one entry per test id, totals and breakdowns, read from stored rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session

from dtf.db.models import Attempt, Batch, Run, RunTask, TestItem, TestResult
from dtf.reporting.model import NOT_RUN, _tests, load_report

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def store_sample_run(session: Session, *, status: str = "failed") -> None:
    """A run on two kinds of hardware: a cpu batch that ran, a cuda batch that broke."""
    session.add(
        Run(
            id="r1", name="nightly", status=status, workdir="/w", created_at=T0,
            started_at=T0 + timedelta(seconds=1), finished_at=T0 + timedelta(seconds=31),
        )
    )  # fmt: skip
    session.add_all(
        [
            RunTask(id=1, run_id="r1", position=0, type="test", queue="cpu", workdir="/w",
                    timeout=60, status="done"),
            RunTask(id=2, run_id="r1", position=1, type="command", name="lint", queue="cpu",
                    workdir="/w", timeout=60, status="done", exit_code=3, output="bad\n",
                    worker="w1@a", started_at=T0, finished_at=T0 + timedelta(seconds=2)),
            Batch(id="b1", run_id="r1", task_id=1, position=0, queue="cpu", hardware="cpu",
                  size=4, status="done"),
            Batch(id="b2", run_id="r1", task_id=1, position=1, queue="cuda", hardware="cuda",
                  size=1, status="broken", error="worker lost"),
            Attempt(id=1, batch_id="b1", number=1, worker="w1@a", status="completed"),
        ]
    )  # fmt: skip
    items = [
        ("pkg/test_a.py::test_ok", "b1", "passed"),
        ("pkg/test_a.py::test_bad", "b1", "failed"),
        ("pkg/test_b.py::test_teardown", "b1", "passed"),
        ("pkg/test_b.py::test_flaky", "b1", "flaky"),
        ("pkg/test_gpu.py::test_big", "b2", None),
    ]
    for i, (nodeid, batch, outcome) in enumerate(items, start=1):
        session.add(
            TestItem(id=i, run_id="r1", task_id=1, batch_id=batch, nodeid=nodeid,
                     path=nodeid.split("::")[0], outcome=outcome)
        )  # fmt: skip
    results = [
        (1, "passed", "call", 0.5, None),
        (2, "failed", "call", 2.0, "def test_bad():\n>       assert 1 == 2\nE       assert 1 == 2"),
        (3, "passed", "call", 0.25, None),
        (3, "error", "teardown", 0.25, "E   RuntimeError: boom"),
        (4, "passed", "call", 1.0, None),
    ]
    for item, outcome, when, duration, text in results:
        session.add(
            TestResult(run_id="r1", item_id=item, attempt_id=1, nodeid=items[item - 1][0],
                       outcome=outcome, when=when, duration=duration, longrepr=text,
                       worker="w1@a")
        )  # fmt: skip
    session.commit()


def test_one_entry_per_test_id_with_its_outcome_hardware_and_worker(session):
    store_sample_run(session)
    report = load_report(session, "r1")

    entries = {t.nodeid: t for t in report.tests}
    assert list(entries) == [
        "pkg/test_a.py::test_bad", "pkg/test_a.py::test_ok", "pkg/test_b.py::test_flaky",
        "pkg/test_b.py::test_teardown", "pkg/test_gpu.py::test_big",
    ]  # fmt: skip
    assert entries["pkg/test_a.py::test_ok"].outcome == "passed"
    # A pass followed by a teardown error is an error, and both lines are counted.
    teardown = entries["pkg/test_b.py::test_teardown"]
    assert (teardown.outcome, teardown.duration, teardown.failing) == ("error", 0.5, True)
    assert entries["pkg/test_b.py::test_flaky"].outcome == "flaky"
    never = entries["pkg/test_gpu.py::test_big"]
    assert (never.outcome, never.hardware, never.worker) == (NOT_RUN, "cuda", None)
    assert entries["pkg/test_a.py::test_bad"].worker == "w1@a"
    assert entries["pkg/test_a.py::test_bad"].module == "pkg/test_a.py"


def test_totals_breakdowns_failures_flaky_and_slowest(session):
    store_sample_run(session)
    report = load_report(session, "r1")

    assert report.counts == {"passed": 3, "failed": 1, "error": 1}
    assert (report.total, report.finished, report.done) == (5, 4, True)
    assert report.wall_s == 30.0
    assert report.test_s == 4.0
    assert [(g.name, g.tests, g.counts) for g in report.by_hardware] == [
        ("cpu", 4, {"passed": 3, "failed": 1, "error": 1}),
        ("cuda", 1, {NOT_RUN: 1}),
    ]
    assert [(g.name, g.duration) for g in report.by_worker] == [("(no worker)", 0), ("w1@a", 4.0)]
    assert [(g.name, g.duration) for g in report.by_module] == [
        ("pkg/test_a.py", 2.5), ("pkg/test_b.py", 1.5), ("pkg/test_gpu.py", 0),
    ]  # fmt: skip
    failing = [(t.nodeid, r.when if r else None) for t, r in report.failures]
    assert failing == [
        ("pkg/test_a.py::test_bad", "call"),
        ("pkg/test_b.py::test_teardown", "teardown"),
        ("pkg/test_gpu.py::test_big", None),  # the run is over: never ran is a failure
    ]
    assert [t.nodeid for t in report.flaky] == ["pkg/test_b.py::test_flaky"]
    assert [t.nodeid for t in report.slowest(2)] == [
        "pkg/test_a.py::test_bad", "pkg/test_b.py::test_flaky",
    ]  # fmt: skip
    (command,) = report.commands
    assert (command.name, command.failing, command.duration) == ("lint", True, 2.0)
    assert report.broken == ["batch b2 on queue cuda: worker lost"]


def test_a_running_run_lists_no_unrun_test_as_failure(session):
    store_sample_run(session, status="running")
    report = load_report(session, "r1")

    assert report.done is False
    assert [t.nodeid for t, r in report.failures if r is None] == []


def test_superseded_attempts_are_kept_apart_and_not_counted():
    """Reruns keep earlier attempts for history; only the last one counts."""
    row = dict(
        nodeid="t.py::test_x", when="call", duration=1.0, longrepr=None, stdout=None,
        stderr=None, worker="w", item_id=1,
    )  # fmt: skip
    records = {
        "batches": [],
        "tasks": [{"id": 1, "position": 0, "queue": "cpu"}],
        "items": [{"id": 1, "nodeid": "t.py::test_x", "batch_id": None, "task_id": 1,
                   "outcome": "flaky", "retries": 1}],
        "results": [
            {**row, "outcome": "failed", "attempt": 1, "superseded": True, "longrepr": "E boom"},
            {**row, "outcome": "passed", "attempt": 2, "superseded": False},
        ],
    }  # fmt: skip
    (test,) = _tests(records)

    assert test.outcome == "flaky"
    assert [(r.outcome, r.attempt) for r in test.results] == [("passed", 2)]
    assert [(r.outcome, r.attempt) for r in test.earlier] == [("failed", 1)]
    assert (test.failing, test.duration, test.retries, test.attempts) == (False, 1.0, 1, 2)


def test_an_unknown_run_is_a_lookup_error(session):
    with pytest.raises(LookupError):
        load_report(session, "nope")
