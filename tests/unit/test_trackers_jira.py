"""JIRA: a test failing N runs in a row gets one issue, found again by its label and
commented on, never duplicated; the history comes from dtf's database."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from dtf.integrations.http import IntegrationError, http_session
from dtf.integrations.settings import ConfigError, Options
from dtf.integrations.trackers.history import FailingTest, failing_tests, with_streaks
from dtf.integrations.trackers.jira import (
    JiraClient,
    JiraSettings,
    deployment_of,
    label_for,
    open_issue_jql,
    report_failing_test,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from dtf.db.models import IntegrationOutcome
from tests.support.http_recorder import Reply, recording_server
from tests.support.run_history import SUITE, add_run, history_db

TOKEN = "atlassian-api-SECRET-token"


@pytest.fixture
def db(tmp_path):
    with history_db(tmp_path) as session:
        yield session


def streaks(session: Session, run_id: str) -> dict[str, int]:
    return {
        t.nodeid: t.streak for t in with_streaks(session, run_id, failing_tests(session, run_id))
    }


def test_a_streak_counts_the_runs_in_a_row_a_test_failed(db):
    add_run(db, 1, {"t::a": "failed", "t::b": "failed", "t::c": "passed"})
    add_run(db, 2, {"t::a": "failed", "t::b": "passed", "t::c": "failed"})
    add_run(db, 3, {"t::a": "error", "t::b": "failed", "t::c": "skipped"})
    last = add_run(db, 4, {"t::a": "failed", "t::b": "failed", "t::c": "failed"})

    assert streaks(db, last) == {"t::a": 4, "t::b": 2, "t::c": 2}
    [a] = [t for t in failing_tests(db, last) if t.nodeid == "t::a"]
    with_streaks(db, last, [a])
    assert a.runs == [last, "run-t-003", "run-t-002", "run-t-001"]
    assert a.message == "E   AssertionError: 4"


def test_other_suites_unfinished_runs_and_unselected_runs_do_not_count(db):
    add_run(db, 1, {"t::a": "failed"})
    add_run(db, 2, {"t::a": "passed"}, suite="/other/projecs")  # another checkout
    add_run(db, 3, {"t::a": "passed"}, status="running")  # still running
    add_run(db, 4, {"t::other": "passed"})  # t::a not selected
    last = add_run(db, 5, {"t::a": "failed"})
    assert streaks(db, last) == {"t::a": 2}


def test_a_rerun_that_passed_ends_a_streak_and_an_infra_error_is_looked_through(db):
    add_run(db, 1, {"t::a": "failed", "t::b": "failed"})
    add_run(db, 2, {"t::a": ["failed", "flaky"], "t::b": "infra_error"})
    last = add_run(db, 3, {"t::a": "failed", "t::b": "failed"})
    assert streaks(db, last) == {"t::a": 1, "t::b": 2}


def test_a_passing_call_with_a_failing_teardown_is_a_failure(db):
    add_run(db, 1, {"t::a": ("passed", "error")})
    last = add_run(db, 2, {"t::a": "failed"})
    assert streaks(db, last) == {"t::a": 2}


@pytest.fixture
def jira():
    with recording_server() as server:
        yield server


def _client(server, **overrides) -> JiraClient:
    settings = JiraSettings(
        url=server.url, project="ML", token=TOKEN, user="ci@example.org", deployment="cloud",
        labels=("dtf", "gpu-ci"),
    )  # fmt: skip
    for key, value in overrides.items():
        settings = JiraSettings(**{**settings.__dict__, key: value})
    return JiraClient(settings, session=http_session(retries=0))


FAILING = FailingTest(
    nodeid="tests/test_model.py::test_fp16[bert]",
    suite=SUITE,
    outcome="failed",
    longrepr="def test_fp16():\n>   assert close\nE   AssertionError: max diff 0.3",
    streak=3,
    runs=["run-3", "run-2", "run-1"],
)
RUN = {"id": "run-3", "name": "nightly", "ci": {"branch": "main", "build_url": "https://ci/7"}}


def test_a_new_failing_test_is_searched_for_then_filed_as_an_issue(jira):
    jira.replies = [
        Reply(200, {"issues": [], "isLast": True}),
        Reply(201, {"id": "10001", "key": "ML-12", "self": f"{jira.url}/rest/api/2/issue/10001"}),
    ]
    action = report_failing_test(_client(jira), FAILING, RUN)
    assert (action.action, action.key) == ("created", "ML-12")

    search, create = jira.requests
    assert search.method == "GET"
    path = urlsplit(search.path)
    assert path.path == "/rest/api/2/search/jql"
    query = parse_qs(path.query)
    label = label_for(FAILING.nodeid)
    assert query["jql"] == [
        f'project = "ML" AND labels = "{label}" AND statusCategory != Done ORDER BY created DESC'
    ]
    assert query["maxResults"] == ["1"]
    basic = base64.b64encode(f"ci@example.org:{TOKEN}".encode()).decode()
    assert search.headers["authorization"] == f"Basic {basic}"
    assert search.headers["accept"] == "application/json"

    assert (create.method, create.path) == ("POST", "/rest/api/2/issue")
    assert create.headers["content-type"] == "application/json"
    assert create.headers["authorization"] == f"Basic {basic}"
    fields = create.json()["fields"]
    assert fields["project"] == {"key": "ML"}
    assert fields["issuetype"] == {"name": "Bug"}
    assert fields["summary"] == "[dtf] tests/test_model.py::test_fp16[bert] fails (failed)"
    assert fields["labels"] == ["dtf", "gpu-ci", label]
    assert " " not in label and len(label) <= 255
    description = fields["description"]
    assert "failed in 3 dtf runs in a row" in description
    assert "{noformat}" in description and "AssertionError: max diff 0.3" in description
    assert "*Build:* https://ci/7" in description


def test_an_open_issue_is_commented_on_instead_of_filed_again(jira):
    jira.replies = [
        Reply(200, {"issues": [{"id": "10000", "key": "ML-9", "fields": {"summary": "x"}}]}),
        Reply(201, {"id": "20000", "body": "..."}),
    ]
    action = report_failing_test(_client(jira), FAILING, RUN)
    assert (action.action, action.key) == ("commented", "ML-9")
    comment = jira.requests[1]
    assert (comment.method, comment.path) == ("POST", "/rest/api/2/issue/ML-9/comment")
    body = comment.json()["body"]
    assert body.startswith("Still failing in dtf run run-3: failed, 3 runs in a row.")
    assert len(jira.requests) == 2  # no second issue


def test_a_create_whose_answer_is_lost_is_not_repeated_but_found(jira):
    jira.replies = [
        Reply(200, {"issues": []}),
        Reply(502, b"<html>Bad Gateway</html>", "text/html"),  # JIRA created it anyway
        Reply(200, {"issues": [{"key": "ML-13"}]}),
    ]
    client = JiraClient(_client(jira).settings)  # the default session, which retries 5xx
    action = report_failing_test(client, FAILING, RUN)
    assert (action.action, action.key) == ("created", "ML-13")
    assert [r.method for r in jira.requests] == ["GET", "POST", "GET"]


def test_data_center_uses_a_bearer_token_and_the_classic_search(jira):
    jira.replies = [Reply(200, {"issues": [], "total": 0})]
    client = _client(jira, user=None, deployment=None)  # 127.0.0.1 is not atlassian.net
    assert client.find_open_issue("dtf-abc") is None
    [search] = jira.requests
    assert urlsplit(search.path).path == "/rest/api/2/search"
    assert search.headers["authorization"] == f"Bearer {TOKEN}"


def test_cloud_is_recognised_by_its_host():
    assert deployment_of("https://acme.atlassian.net") == "cloud"
    assert deployment_of("https://jira.acme.com/") == "datacenter"
    assert open_issue_jql('A"B', "l").startswith('project = "A\\"B"')


def test_a_refusal_names_the_call_and_hides_the_token(jira):
    jira.default = lambda request: Reply(401, {"errorMessages": [f"bad token {TOKEN}"]})
    with pytest.raises(IntegrationError) as error:
        report_failing_test(_client(jira), FAILING, RUN)
    message = str(error.value)
    assert message.startswith("JIRA search: HTTP 401 from GET")
    assert TOKEN not in message


def test_the_plugin_files_only_tests_past_the_threshold_and_records_the_issue(
    db, jira, monkeypatch
):
    from dtf.integrations.trackers.plugin import JiraTracker

    for n in (1, 2):
        add_run(db, n, {"t::flaky": "passed" if n == 1 else "failed", "t::broken": "failed"})
    last = add_run(db, 3, {"t::flaky": "failed", "t::broken": "failed", "t::ok": "passed"})
    monkeypatch.setenv("DTF_DATABASE_URL", str(db.get_bind().url))
    monkeypatch.setenv("DTF_JIRA_URL", jira.url)
    monkeypatch.setenv("DTF_JIRA_TOKEN", TOKEN)
    monkeypatch.setenv("DTF_JIRA_USER", "ci@example.org")
    monkeypatch.setenv("DTF_JIRA_PROJECT", "ML")
    jira.replies = [Reply(200, {"issues": []}), Reply(201, {"id": "1", "key": "ML-1"})]

    run = {"id": last, "name": None, "ci": None, "spec": {}}
    JiraTracker().dtf_run_finished(run, {"status": "failed", "run_id": last})

    # Only t::broken failed 3 runs in a row (the default threshold).
    assert [r.method for r in jira.requests] == ["GET", "POST"]
    assert "t::broken" in jira.requests[1].json()["fields"]["summary"]
    db.expire_all()
    [outcome] = db.scalars(select(IntegrationOutcome)).all()
    assert (outcome.integration, outcome.ok) == ("jira", True)
    assert outcome.url == f"{jira.url}/browse/ML-1"

    # A lower threshold from the task file brings t::flaky in too.
    def fake_jira(request):
        if request.method == "GET":  # ML-1 is t::broken's issue, found by its label
            mine = label_for("t::broken") in parse_qs(urlsplit(request.path).query)["jql"][0]
            return Reply(200, {"issues": [{"key": "ML-1"}] if mine else []})
        if request.path == "/rest/api/2/issue":
            return Reply(201, {"id": "2", "key": "ML-2"})
        return Reply(201, {"id": "9"})

    jira.requests.clear()
    jira.default = fake_jira
    run["spec"] = {"integrations": {"jira": {"threshold": 2}}}
    JiraTracker().dtf_run_finished(run, {"status": "failed", "run_id": last})
    posts = [(r.path, r.json()) for r in jira.requests if r.method == "POST"]
    assert len(jira.requests) == 4
    assert posts[0][0] == "/rest/api/2/issue" and "t::flaky" in posts[0][1]["fields"]["summary"]
    assert posts[1][0] == "/rest/api/2/issue/ML-1/comment"


def test_settings_missing_a_token_or_project_are_named():
    from dtf.integrations.trackers.plugin import jira_settings

    assert jira_settings(Options("jira", env={})) is None
    with pytest.raises(ConfigError, match="DTF_JIRA_TOKEN is not"):
        jira_settings(Options("jira", env={"DTF_JIRA_URL": "https://x"}))
    with pytest.raises(ConfigError, match="DTF_JIRA_PROJECT is not"):
        jira_settings(Options("jira", env={"DTF_JIRA_URL": "https://x", "DTF_JIRA_TOKEN": "t"}))
    with pytest.raises(ConfigError, match=r"integrations\.jira\.treshold: unknown setting"):
        Options("jira", task={"treshold": 2}).check_keys(("threshold",))
    with pytest.raises(ConfigError, match="secrets are not read from a task file"):
        Options("jira", task={"token": "t0k3n"}).check_keys(("threshold",))
