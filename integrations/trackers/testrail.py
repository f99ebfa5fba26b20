"""TestRail: the results of a dtf run, per case id, added to a TestRail test run.

Case ids come from ``@pytest.mark.testrail("C123")`` or
``@pytest.mark.dtf(testrail="C123")`` (stored with each test item as
``requirements["testrail"]``). One ``POST index.php?/api/v2/add_results_for_cases/{run_id}``
per 250 cases, body ``{"results": [{"case_id", "status_id", "comment", "elapsed",
"version"}]}``, Basic authentication with the user's email and password or API key.

TestRail's built-in statuses: 1 Passed, 2 Blocked, 3 Untested (cannot be set),
4 Retest, 5 Failed. A case covered by several tests gets the status of its worst one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from dtf.integrations.calls import call
from dtf.integrations.http import http_session
from dtf.integrations.settings import ConfigError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.db.models import TestItem, TestResult

PASSED, BLOCKED, UNTESTED, RETEST, FAILED = 1, 2, 3, 4, 5
#: dtf outcome -> TestRail status id; an outcome mapped to None is not reported.
DEFAULT_STATUS_MAP: dict[str, int | None] = {
    "passed": PASSED,
    "xfailed": PASSED,  # the known bug is still there, as the test says
    "xpassed": PASSED,  # a strict xpass is reported by pytest as failed
    "skipped": BLOCKED,
    "failed": FAILED,
    "error": FAILED,
    "crashed": FAILED,
    "timed_out": FAILED,
    "out_of_memory": FAILED,
    "infra_error": RETEST,  # dtf's infrastructure gave up on it: run it again
    "flaky": PASSED,  # failed, then passed on a rerun (the comment says so)
}
#: Worst first: a case's status is that of its worst test.
SEVERITY = (
    "crashed", "out_of_memory", "timed_out", "error", "failed", "infra_error", "flaky",
    "skipped", "xpassed", "xfailed", "passed",
)  # fmt: skip
BATCH = 250
_COMMENT_LINES = 20


def parse_case_id(value: Any) -> int:
    """``"C123"``, ``"123"`` or ``123`` -> 123; ValueError naming the value otherwise."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    digits = text[1:] if text[:1] in ("C", "c") else text
    if not digits.isdigit() or int(digits) <= 0:
        raise ValueError(f"not a TestRail case id: {value!r} (expected like 'C123' or 123)")
    return int(digits)


def parse_status_map(text: str) -> dict[str, int | None]:
    """``"skipped=4,xfailed="`` on top of the default map (empty: do not report)."""
    mapping = dict(DEFAULT_STATUS_MAP)
    for part in filter(None, (p.strip() for p in text.split(","))):
        outcome, sep, status = (s.strip() for s in part.partition("="))
        if not sep or outcome not in DEFAULT_STATUS_MAP or (status and not status.isdigit()):
            raise ConfigError(
                f"DTF_TESTRAIL_STATUS_MAP: bad entry {part!r}: expected OUTCOME=STATUS_ID "
                f"with OUTCOME one of {', '.join(DEFAULT_STATUS_MAP)}"
            )
        mapping[outcome] = int(status) if status else None
    return mapping


@dataclass
class CaseResult:
    """What a run says about one TestRail case: its tests and their outcomes."""

    case_id: int
    tests: list[tuple[str, str, float, str | None]] = field(default_factory=list)

    @property
    def worst_outcome(self) -> str:
        outcomes = [outcome for _, outcome, _, _ in self.tests]
        return min(outcomes, key=lambda o: SEVERITY.index(o) if o in SEVERITY else 0)

    @property
    def elapsed_s(self) -> float:
        return sum(duration for _, _, duration, _ in self.tests)


def elapsed_text(seconds: float) -> str | None:
    """TestRail's timespan (``"1m 5s"``); None under a second, which it does not accept."""
    total = round(seconds)
    if total < 1:
        return None
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return " ".join(p for p in parts if p)


def case_results(session: Session, run_id: str) -> list[CaseResult]:
    """The run's results grouped by the TestRail case ids of their tests."""
    items = session.execute(
        select(TestItem.id, TestItem.nodeid, TestItem.requirements).where(TestItem.run_id == run_id)
    ).all()
    cases_of = {
        item_id: [parse_case_id(c) for c in (requirements or {}).get("testrail") or []]
        for item_id, _, requirements in items
    }
    cases_of = {item_id: cases for item_id, cases in cases_of.items() if cases}
    if not cases_of:
        return []
    # One outcome per test: its worst result line (a teardown error beats a pass).
    per_item: dict[int, tuple[str, str, float, str | None]] = {}
    for item_id, nodeid, outcome, duration, longrepr in session.execute(
        select(
            TestResult.item_id,
            TestResult.nodeid,
            TestResult.outcome,
            TestResult.duration,
            TestResult.longrepr,
        )
        .where(TestResult.run_id == run_id, TestResult.superseded.is_(False))
        .order_by(TestResult.id)
    ):
        if item_id not in cases_of:
            continue
        previous = per_item.get(item_id)
        spent = (duration or 0.0) + (previous[2] if previous else 0.0)
        if previous is None or _rank(outcome) < _rank(previous[1]):
            per_item[item_id] = (nodeid, outcome, spent, longrepr)
        else:
            per_item[item_id] = (*previous[:2], spent, previous[3])
    results: dict[int, CaseResult] = {}
    for item_id, test in per_item.items():
        for case_id in cases_of[item_id]:
            results.setdefault(case_id, CaseResult(case_id)).tests.append(test)
    return [results[c] for c in sorted(results)]


def result_payload(
    cases: Iterable[CaseResult],
    status_map: Mapping[str, int | None],
    *,
    run: Mapping[str, Any],
    version: str | None = None,
) -> list[dict[str, Any]]:
    """The ``results`` of add_results_for_cases; cases with an unmapped status are left out."""
    results = []
    for case in cases:
        status = status_map.get(case.worst_outcome)
        if status is None:
            continue
        entry: dict[str, Any] = {
            "case_id": case.case_id,
            "status_id": status,
            "comment": _comment(case, run),
        }
        elapsed = elapsed_text(case.elapsed_s)
        if elapsed:
            entry["elapsed"] = elapsed
        if version:
            entry["version"] = version
        results.append(entry)
    return results


class TestRailClient:
    """add_results_for_cases against one TestRail instance."""

    __test__ = False

    def __init__(
        self, url: str, user: str, api_key: str, session: requests.Session | None = None
    ) -> None:
        self.base = url.rstrip("/")
        self.session = session or http_session()
        self.session.auth = (user, api_key)
        self.secrets = [api_key]

    def add_results_for_cases(self, run_id: int, results: list[dict[str, Any]]) -> int:
        """Post ``results`` in batches; how many TestRail stored."""
        stored = 0
        for start in range(0, len(results), BATCH):
            response = call(
                self.session,
                "POST",
                f"{self.base}/index.php?/api/v2/add_results_for_cases/{run_id}",
                what=f"TestRail add_results_for_cases/{run_id}",
                secrets=self.secrets,
                json={"results": results[start : start + BATCH]},
            )
            stored += len(response.json())
        return stored


def _rank(outcome: str) -> int:
    return SEVERITY.index(outcome) if outcome in SEVERITY else 0


def _comment(case: CaseResult, run: Mapping[str, Any]) -> str:
    head = f"dtf run {run.get('id')}" + (f" ({run['name']})" if run.get("name") else "")
    lines = [head + ":"]
    for nodeid, outcome, duration, longrepr in case.tests[:_COMMENT_LINES]:
        line = f"- {nodeid}: {outcome.replace('_', ' ')} in {duration:.2f}s"
        if longrepr and outcome not in ("passed", "xpassed"):
            last = [t.strip() for t in longrepr.splitlines() if t.strip()]
            if last:
                line += f": {last[-1][:300]}"
        lines.append(line)
    if len(case.tests) > _COMMENT_LINES:
        lines.append(f"...and {len(case.tests) - _COMMENT_LINES} more tests")
    build = (run.get("ci") or {}).get("build_url")
    if build:
        lines.append(f"Build: {build}")
    return "\n".join(lines)
