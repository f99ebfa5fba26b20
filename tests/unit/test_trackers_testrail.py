"""TestRail: case ids from markers, dtf outcomes mapped to status ids, one
add_results_for_cases call per run, Basic auth, no leaked API key."""

from __future__ import annotations

import base64
import textwrap

import pytest
from dtf.integrations.http import IntegrationError, http_session
from dtf.integrations.settings import ConfigError
from dtf.integrations.trackers.testrail import (
    BLOCKED,
    FAILED,
    PASSED,
    TestRailClient,
    case_results,
    elapsed_text,
    parse_status_map,
    result_payload,
)
from sqlalchemy import select

from dtf.db.models import IntegrationOutcome, TestItem, TestResult
from dtf.executor.collect import collect
from dtf.scheduling.routing import describe
from dtf.spec import SpecError, parse_requirements
from tests.support.http_recorder import Reply, recording_server
from tests.support.run_history import add_run, history_db

API_KEY = "testrail-api-SECRET-key"


@pytest.fixture
def db(tmp_path):
    with history_db(tmp_path) as session:
        yield session


def test_case_ids_come_from_both_markers_and_are_checked(tmp_path):
    (tmp_path / "pytest.ini").write_text("")
    (tmp_path / "test_cases.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.testrail("C101", "C102")
            def test_two_cases(): pass

            @pytest.mark.dtf(testrail="C103", hardware="cpu")
            def test_dtf_marker(): pass

            @pytest.mark.testrail(ids=("C104",))  # pytest-testrail's spelling
            @pytest.mark.dtf(testrail=105)
            def test_both(): pass

            def test_none(): pass
            """
        )
    )
    collection = collect(["test_cases.py"], tmp_path, extra_args=["--strict-markers"])
    cases = {
        item.nodeid.split("::")[1]: parse_requirements(item.requirements, item.nodeid).testrail
        for item in collection.items
    }
    assert cases == {
        "test_two_cases": [101, 102],
        "test_dtf_marker": [103],
        "test_both": [105, 104],
        "test_none": None,
    }
    # Case ids do not constrain routing, nor clutter an "unroutable" message.
    assert describe({"hardware": ["cuda"], "testrail": [101]}) == "cuda"
    with pytest.raises(SpecError) as error:
        parse_requirements({"testrail": "CX12"}, "t.py::t: @pytest.mark.dtf")
    assert str(error.value) == (
        "t.py::t: @pytest.mark.dtf: testrail: not a TestRail case id: 'CX12' "
        "(expected like 'C123' or 123)"
    )


def _results(db):
    run = add_run(
        db, 1,
        {"t::a": "passed", "t::b": "failed", "t::c": "skipped", "t::d": ("passed", "error"),
         "t::e": "xfailed", "t::untracked": "failed"},
    )  # fmt: skip
    cases = {"t::a": [1], "t::b": [2, 9], "t::c": [3], "t::d": [4], "t::e": [5], "t::f": [9]}
    for item in db.scalars(select(TestItem).filter_by(run_id=run)):
        if item.nodeid in cases:
            item.requirements = {"testrail": cases[item.nodeid]}
    # A second test of case 9 passed: the case takes its worst outcome.
    item = TestItem(run_id=run, task_id=item.task_id, nodeid="t::f", path="t",
                    requirements={"testrail": [9]})  # fmt: skip
    db.add(item)
    db.flush()
    db.add(TestResult(run_id=run, item_id=item.id, nodeid="t::f", outcome="passed",
                      when="call", duration=65.4))  # fmt: skip
    db.commit()
    return run


def test_each_case_gets_the_status_of_its_worst_test(db):
    run = _results(db)
    cases = case_results(db, run)
    assert [c.case_id for c in cases] == [1, 2, 3, 4, 5, 9]
    payload = result_payload(cases, parse_status_map(""), run={"id": run}, version="abc123")
    status = {r["case_id"]: r["status_id"] for r in payload}
    assert status == {1: PASSED, 2: FAILED, 3: BLOCKED, 4: FAILED, 5: PASSED, 9: FAILED}
    nine = next(r for r in payload if r["case_id"] == 9)
    assert nine["elapsed"] == "1m 5s"
    assert nine["version"] == "abc123"
    assert nine["comment"].splitlines()[0] == f"dtf run {run}:"
    assert "- t::b: failed in 0.00s: E   AssertionError: 1" in nine["comment"]
    assert "- t::f: passed in 65.40s" in nine["comment"]
    assert "elapsed" not in next(r for r in payload if r["case_id"] == 1)  # under a second


def test_the_status_map_can_be_changed_and_an_outcome_left_out():
    mapping = parse_status_map("skipped=,xfailed=5, error=4")
    assert (mapping["skipped"], mapping["xfailed"], mapping["error"]) == (None, 5, 4)
    with pytest.raises(ConfigError, match="bad entry 'skiped=2'"):
        parse_status_map("skiped=2")
    assert elapsed_text(3725) == "1h 2m 5s" and elapsed_text(0.4) is None


@pytest.fixture
def testrail():
    with recording_server() as server:
        yield server


def test_results_are_added_to_the_run_with_basic_auth(testrail, db):
    run = _results(db)
    results = result_payload(case_results(db, run), parse_status_map(""), run={"id": run})
    testrail.default = lambda request: Reply(
        200, [{"id": i, "test_id": i, "status_id": r["status_id"]} for i, r in enumerate(results)]
    )
    client = TestRailClient(testrail.url + "/", "qa@example.org", API_KEY, http_session(retries=0))
    assert client.add_results_for_cases(7, results) == len(results)

    [request] = testrail.requests
    assert request.method == "POST"
    assert request.path == "/index.php?/api/v2/add_results_for_cases/7"
    basic = base64.b64encode(f"qa@example.org:{API_KEY}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {basic}"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert list(body) == ["results"]
    assert [r["case_id"] for r in body["results"]] == [1, 2, 3, 4, 5, 9]
    assert {tuple(sorted(r)) for r in body["results"]} <= {
        ("case_id", "comment", "status_id"),
        ("case_id", "comment", "elapsed", "status_id"),
    }


def test_a_refusal_is_one_line_without_the_api_key(testrail):
    testrail.default = lambda request: Reply(
        400, {"error": "Field :results cannot be empty (case C42 unknown or not part of the run)"}
    )
    client = TestRailClient(testrail.url, "qa@example.org", API_KEY, http_session(retries=0))
    with pytest.raises(IntegrationError) as error:
        client.add_results_for_cases(7, [{"case_id": 42, "status_id": 1}])
    message = str(error.value)
    assert message.startswith("TestRail add_results_for_cases/7: HTTP 400 from POST")
    assert "case C42 unknown" in message and API_KEY not in message


def test_the_plugin_posts_the_run_and_records_where_to_see_it(testrail, db, monkeypatch):
    from dtf.integrations.trackers.plugin import TestRailReporter

    run = _results(db)
    monkeypatch.setenv("DTF_DATABASE_URL", str(db.get_bind().url))
    monkeypatch.setenv("DTF_TESTRAIL_URL", testrail.url)
    monkeypatch.setenv("DTF_TESTRAIL_USER", "qa@example.org")
    monkeypatch.setenv("DTF_TESTRAIL_API_KEY", API_KEY)
    monkeypatch.setenv("DTF_TESTRAIL_STATUS_MAP", "skipped=")
    testrail.default = lambda request: Reply(200, [{"id": 1}] * len(request.json()["results"]))
    spec = {"integrations": {"testrail": {"run_id": 12}}}
    payload = {"id": run, "name": "nightly", "ci": {"commit": "0123456789abcdef"}, "spec": spec}

    TestRailReporter().dtf_run_finished(payload, {"status": "failed"})

    [request] = testrail.requests
    assert request.path == "/index.php?/api/v2/add_results_for_cases/12"
    results = request.json()["results"]
    assert [r["case_id"] for r in results] == [1, 2, 4, 5, 9]  # skipped case 3 left out
    assert {r["version"] for r in results} == {"0123456789ab"}
    db.expire_all()
    [outcome] = db.scalars(select(IntegrationOutcome)).all()
    assert outcome.ok and outcome.url == f"{testrail.url}/index.php?/runs/view/12"

    monkeypatch.delenv("DTF_TESTRAIL_API_KEY")
    with pytest.raises(ConfigError, match="DTF_TESTRAIL_USER or DTF_TESTRAIL_API_KEY is not"):
        TestRailReporter().dtf_run_finished(payload, {"status": "failed"})
