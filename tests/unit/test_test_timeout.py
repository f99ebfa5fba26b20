"""A test past its timeout (issue 16, item 9): killed at its timeout, reported timed_out
with the timeout it was given; a retry with a longer timeout (recovery's
``retry_test_longer``) still names the test's own. Against real pytest children."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtf.executor import warm
from dtf.executor.pytest_runner import Decision, Incident, RecoveryHooks, run_pytest_batch
from dtf.executor.records import TestRecord

HANGS = """
import time

def test_hangs():
    time.sleep(3600)

def test_after():
    pass
"""
IDS = ["test_hang.py::test_hangs", "test_hang.py::test_after"]


class RetriesLonger(RecoveryHooks):
    """Runs a hung test again with twice its timeout, then isolates it; records incidents."""

    def __init__(self) -> None:
        self.incidents: list[Incident] = []

    def decide(self, incident: Incident) -> Decision:
        self.incidents.append(incident)
        if incident.retries == 0:
            return Decision("retry", timeout_factor=2.0)
        return Decision("isolate")


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("")
    (tmp_path / "test_hang.py").write_text(HANGS)
    return tmp_path


def run(suite: Path, method: str, **kwargs) -> list[TestRecord]:
    if method == "fork" and (reason := warm.fork_unsafe_reason()):
        pytest.skip(f"cannot fork warm children here: {reason}")
    records: list[TestRecord] = []
    run_pytest_batch(IDS, suite, on_record=records.append, start_method=method, **kwargs)
    return records


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_hung_test_costs_its_timeout_and_is_told_that_timeout(suite: Path, method: str):
    records = run(suite, method, test_timeout=2.0)

    hung, after = records
    assert (hung.outcome, hung.longrepr) == ("timed_out", "test exceeded its timeout of 2s")
    assert 2.0 <= hung.duration < 4.0  # killed at its timeout, not at a multiple of it
    assert after.outcome == "passed"


def test_a_longer_retry_still_names_the_tests_own_timeout(suite: Path):
    hooks = RetriesLonger()

    records = run(suite, "spawn", test_timeout=1.0, recovery=hooks)

    assert [i.detail for i in hooks.incidents] == [
        "test exceeded its timeout of 1s",
        "test exceeded its timeout of 1s (and the 2s that recovery's retry allowed it)",
    ]
    hung = records[0]
    assert hung.outcome == "timed_out"
    assert hung.longrepr == hooks.incidents[-1].detail
    assert 2.0 <= hung.duration < 4.0  # the retry's own run, at its longer timeout
