"""Read a JUnit XML file into counts and per-test outcomes, and compare two of them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

COUNTS = ("tests", "failures", "errors", "skipped")

#: A test's id in a JUnit file: (classname, name).
TestId = tuple[str, str]


@dataclass
class Report:
    counts: dict[str, int]
    #: test id -> its outcomes, sorted (one test may have two cases: a failure and then a
    #: teardown error, as pytest writes them)
    outcomes: dict[TestId, tuple[str, ...]] = field(default_factory=dict)
    cases: int = 0  # <testcase> elements


def _outcome(case: ET.Element) -> str:
    for child in case:
        if child.tag == "failure":
            return "failure"
        if child.tag == "error":
            return "error"
        if child.tag == "skipped":
            kind = child.get("type", "")
            if kind == "pytest.xfail":
                return "xfailed"
            if kind == "dtf.pending":
                return "not-run"
            return "skipped"
    return "passed"


def read(path: Path) -> Report:
    """Counts summed over every ``<testsuite>``; each ``<testcase>``'s outcome by its id."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = dict.fromkeys(COUNTS, 0)
    for suite in suites:
        for key in COUNTS:
            counts[key] += int(suite.get(key, "0") or 0)
    seen: dict[TestId, list[str]] = {}
    for case in root.iter("testcase"):
        test_id = (case.get("classname", ""), case.get("name", ""))
        seen.setdefault(test_id, []).append(_outcome(case))
    cases = sum(len(v) for v in seen.values())
    return Report(counts, {k: tuple(sorted(v)) for k, v in seen.items()}, cases)


def format_id(test_id: TestId) -> str:
    classname, name = test_id
    return f"{classname}::{name}" if classname else name


@dataclass
class Difference:
    counts: dict[str, tuple[int, int]]  # only the counts that differ: (pytest, dtf)
    #: test id -> (pytest's outcomes, dtf's outcomes); () where that side has no such test
    tests: dict[TestId, tuple[tuple[str, ...], tuple[str, ...]]]

    def __bool__(self) -> bool:
        return bool(self.counts or self.tests)

    def describe_counts(self) -> str:
        return ", ".join(f"{k} {a}/{b}" for k, (a, b) in self.counts.items())

    def outcome_summary(self) -> str:
        """How the differing tests differ, by kind: ``52 x passed->error``."""
        kinds = Counter(
            f"{'/'.join(a) or 'absent'}->{'/'.join(b) or 'absent'}" for a, b in self.tests.values()
        )
        return ", ".join(f"{n} x {kind}" for kind, n in kinds.most_common())

    def first(self, n: int = 3) -> list[str]:
        return [
            f"{format_id(test_id)}: {'/'.join(a) or 'absent'} vs {'/'.join(b) or 'absent'}"
            for test_id, (a, b) in sorted(self.tests.items())[:n]
        ]


def compare(pytest_report: Report, dtf_report: Report) -> Difference:
    counts = {
        key: (pytest_report.counts[key], dtf_report.counts[key])
        for key in COUNTS
        if pytest_report.counts[key] != dtf_report.counts[key]
    }
    tests = {}
    for test_id in pytest_report.outcomes.keys() | dtf_report.outcomes.keys():
        a = pytest_report.outcomes.get(test_id, ())
        b = dtf_report.outcomes.get(test_id, ())
        if a != b:
            tests[test_id] = (a, b)
    return Difference(counts, tests)
