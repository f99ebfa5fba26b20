"""A test past its timeout (issue 16, item 9): killed at its timeout and reported
timed_out with the timeout it was given (recovery isolates a hung test at once: no retry
with a longer timeout, which made one cost three times its timeout). Against real
pytest children."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtf.executor import warm
from dtf.executor.pytest_runner import run_pytest_batch
from dtf.executor.records import TestRecord

HANGS = """
import time

def test_hangs():
    time.sleep(3600)

def test_after():
    pass
"""
IDS = ["test_hang.py::test_hangs", "test_hang.py::test_after"]


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
def test_a_hung_test_is_timed_out_once_and_told_its_own_timeout(suite: Path, method: str):
    records = run(suite, method, test_timeout=2.0)

    hung, after = records
    assert (hung.outcome, hung.longrepr) == ("timed_out", "test exceeded its timeout of 2s")
    assert after.outcome == "passed"
