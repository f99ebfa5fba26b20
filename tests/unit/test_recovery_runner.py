"""The runner's side of recovery: reruns of failed tests and decisions on a crash."""

from __future__ import annotations

from pathlib import Path

from dtf.executor.pytest_runner import Decision, Incident, RecoveryHooks, run_pytest_batch
from dtf.executor.records import TestRecord

FLAKY = """
import pathlib

def test_fails_once(tmp_path_factory):
    flag = pathlib.Path(__file__).with_name("seen.flag")
    if not flag.exists():
        flag.write_text("1")
        assert False, "first attempt fails"

def test_always_fails():
    assert False

def test_passes():
    pass
"""

CRASH_ONCE = """
import os, pathlib

def test_crashes_once():
    flag = pathlib.Path(__file__).with_name("crashed.flag")
    if not flag.exists():
        flag.write_text("1")
        os._exit(9)

def test_after():
    pass
"""


def run(root: Path, nodeids: list[str], **kwargs) -> list[TestRecord]:
    records: list[TestRecord] = []
    run_pytest_batch(nodeids, root, test_timeout=30, on_record=records.append, **kwargs)
    return records


def test_a_test_that_passes_on_a_rerun_is_flaky_and_its_failure_is_kept(tmp_path):
    (tmp_path / "test_flaky.py").write_text(FLAKY)
    ids = [f"test_flaky.py::{name}" for name in ("test_fails_once", "test_always_fails",
                                                  "test_passes")]  # fmt: skip
    records = run(tmp_path, ids, reruns=2)
    seen = [(r.nodeid.split("::")[1], r.outcome, r.attempt) for r in records if r.when != "setup"]
    assert ("test_fails_once", "failed", 1) in seen
    assert ("test_fails_once", "flaky", 2) in seen
    assert [s for s in seen if s[0] == "test_always_fails"] == [
        ("test_always_fails", "failed", 1),
        ("test_always_fails", "failed", 2),
        ("test_always_fails", "failed", 3),
    ]
    assert [s for s in seen if s[0] == "test_passes"] == [("test_passes", "passed", 1)]


def test_without_reruns_a_failure_is_final(tmp_path):
    (tmp_path / "test_flaky.py").write_text(FLAKY)
    records = run(tmp_path, ["test_flaky.py::test_fails_once"])
    assert [(r.outcome, r.attempt) for r in records] == [("failed", 1)]


class RetryOnce(RecoveryHooks):
    def __init__(self) -> None:
        self.incidents: list[Incident] = []
        self.resolutions: list[tuple[str, bool]] = []

    def decide(self, incident: Incident) -> Decision:
        self.incidents.append(incident)
        action = "retry" if incident.retries == 0 else "isolate"
        return Decision(action, strategy=action)

    def resolved(self, decision: Decision, ok: bool) -> None:
        self.resolutions.append((decision.strategy, ok))


def test_a_crash_retried_in_place_that_then_passes_is_a_recovery_not_a_crash(tmp_path):
    (tmp_path / "test_crash.py").write_text(CRASH_ONCE)
    hooks = RetryOnce()
    records = run(
        tmp_path, ["test_crash.py::test_crashes_once", "test_crash.py::test_after"],
        recovery=hooks,
    )  # fmt: skip
    assert sorted((r.nodeid.split("::")[1], r.outcome) for r in records) == [
        ("test_after", "passed"),
        ("test_crashes_once", "passed"),
    ]
    assert [(i.failure_class, i.nodeid) for i in hooks.incidents] == [
        ("crash", "test_crash.py::test_crashes_once")
    ]
    assert hooks.resolutions == [("retry", True)]
