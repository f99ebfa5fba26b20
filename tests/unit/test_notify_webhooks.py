"""Slack and Teams webhooks: the payload each documents, posted as JSON, secrets kept out."""

from __future__ import annotations

import pytest
from dtf.integrations.http import IntegrationError, http_session
from dtf.integrations.notify.notice import counts_text, recovery_notice, run_notice, should_notify
from dtf.integrations.notify.slack import SlackWebhook, slack_payload
from dtf.integrations.notify.teams import CARD_CONTENT_TYPE, TeamsWebhook, teams_payload
from dtf.integrations.settings import ConfigError
from sqlalchemy import select

from dtf.db.models import IntegrationOutcome
from tests.support.http_recorder import Reply, recording_server
from tests.support.run_history import add_run, history_db

SLACK_TOKEN = "XXXXxxxxSECRETxxxxXXXX"
TEAMS_SIG = "sig0123456789SECRETabc"

RUN = {
    "id": "3f2a9c1e-0000-4000-8000-000000000001",
    "name": "nightly-gpu",
    "status": "failed",
    "workdir": "/srv/ci/project",
    "started_at": "2025-01-02T03:04:05+00:00",
    "finished_at": "2025-01-02T03:05:17.500000+00:00",
    "error": None,
    "ci": {
        "provider": "github",
        "commit": "0123456789abcdef0123",
        "branch": "main",
        "pull_request": "42",
        "build_url": "https://ci.example/build/7",
    },
    "spec": {},
}
SUMMARY = {
    "run_id": RUN["id"],
    "status": "failed",
    "exit_code": 1,
    "total": 10,
    "finished": 10,
    "counts": {"passed": 7, "failed": 2, "skipped": 1},
    "failures": [
        {"nodeid": "tests/test_a.py::test_lt", "outcome": "failed", "message": "assert 1 < 0"},
        {"nodeid": "tests/test_b.py::test_x", "outcome": "failed", "message": "E  <!channel> x"},
    ],
    "broken": [],
}


@pytest.fixture
def server():
    with recording_server() as recorder:
        yield recorder


def test_run_notice_says_verdict_counts_duration_and_where_to_look():
    notice = run_notice(RUN, SUMMARY)
    assert notice.severity == "failure"
    assert notice.title == "dtf run nightly-gpu: failed"
    assert notice.text == "7 passed, 2 failed, 1 skipped (10 tests) in 1 min 12 s"
    facts = dict(notice.facts)
    assert facts["Run"] == RUN["id"]
    assert facts["Branch"] == "main" and facts["Commit"] == "0123456789ab"
    assert facts["Pull request"] == "42"
    assert notice.details == [
        "tests/test_a.py::test_lt: failed: assert 1 < 0",
        "tests/test_b.py::test_x: failed: E <!channel> x",
    ]
    assert notice.link == ("Open the build", "https://ci.example/build/7")


def test_notify_on_failure_skips_a_passed_run_and_never_skips_all():
    assert should_notify({"status": "passed"}, "always")
    assert not should_notify({"status": "passed"}, "failure")
    assert should_notify({"status": "error"}, "failure")
    assert not should_notify({"status": "failed"}, "never")
    assert counts_text({"timed_out": 1, "passed": 3}) == "3 passed, 1 timed out"


def test_slack_gets_a_block_kit_message_as_json(server):
    url = f"{server.url}/services/T000/B000/{SLACK_TOKEN}"
    SlackWebhook(url).send(run_notice(RUN, SUMMARY))

    [request] = server.requests
    assert request.method == "POST"
    assert request.path == f"/services/T000/B000/{SLACK_TOKEN}"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["text"].startswith("dtf run nightly-gpu: failed: 7 passed, 2 failed")
    header, summary, facts, failures, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "dtf run nightly-gpu: failed", "emoji": True},
    }
    assert summary["type"] == "section" and summary["text"]["type"] == "mrkdwn"
    assert "7 passed, 2 failed, 1 skipped" in summary["text"]["text"]
    assert {"type": "mrkdwn", "text": f"*Run*\n{RUN['id']}"} in facts["fields"]
    # Markup from test output is escaped: no @channel ping from a failure message.
    assert "&lt;!channel&gt;" in failures["text"]["text"]
    assert "<!channel>" not in failures["text"]["text"]
    assert context["elements"] == [
        {"type": "mrkdwn", "text": "<https://ci.example/build/7|Open the build>"}
    ]


def test_slack_limits_are_kept_for_a_huge_run():
    many = {
        **SUMMARY,
        "failures": [
            {"nodeid": f"tests/test_{i}.py::test_{'x' * 200}", "outcome": "failed", "message": "m"}
            for i in range(50)
        ],
        "counts": {"failed": 500},
    }
    notice = run_notice({**RUN, "name": "n" * 300}, many, max_details=40)
    payload = slack_payload(notice)
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    for block in payload["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        if "fields" in block:
            assert len(block["fields"]) <= 10
            assert all(len(f["text"]) <= 2000 for f in block["fields"])
    assert notice.more == 500 - 40


def test_teams_gets_an_adaptive_card_in_a_message(server):
    server.replies = [Reply(202, b"", "text/plain")]  # Workflows answer 202 Accepted
    invoke = "/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01"
    url = f"{server.url}{invoke}&sig={TEAMS_SIG}"
    TeamsWebhook(url).send(run_notice(RUN, SUMMARY))

    [request] = server.requests
    assert request.method == "POST"
    assert request.path.endswith(f"&sig={TEAMS_SIG}")
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert (
        attachment["contentType"] == CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"
    )
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["version"] == "1.4"
    title, text, facts, *details = card["body"]
    assert title["type"] == "TextBlock" and title["text"] == "dtf run nightly-gpu: failed"
    assert title["color"] == "Attention"
    assert text["text"].startswith("7 passed, 2 failed, 1 skipped")
    assert facts["type"] == "FactSet"
    assert {"title": "Commit", "value": "0123456789ab"} in facts["facts"]
    assert [d["text"] for d in details][1:] == [
        "tests/test_a.py::test_lt: failed: assert 1 < 0",
        "tests/test_b.py::test_x: failed: E <!channel> x",
    ]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open the build", "url": "https://ci.example/build/7"}
    ]


def test_a_passed_run_is_green_and_lists_no_failures():
    passed = {**SUMMARY, "status": "passed", "counts": {"passed": 10}, "failures": []}
    card = teams_payload(run_notice({**RUN, "status": "passed"}, passed))
    blocks = card["attachments"][0]["content"]["body"]
    assert blocks[0]["color"] == "Good"
    assert [b["type"] for b in blocks] == ["TextBlock", "TextBlock", "FactSet"]


def test_a_recovery_failure_is_a_critical_notice():
    notice = recovery_notice(
        {
            "run_id": RUN["id"],
            "batch_id": "b7e1c2d3-aaaa",
            "attempt": 2,
            "worker": "gpu1@host",
            "reason": "attempt 1 on gpu0@host was lost",
            "status": "failed",
            "error": "WorkerLostError: SIGKILL",
        }
    )
    assert notice.severity == "critical"
    assert notice.title == "dtf: recovery failed for run 3f2a9c1e"
    assert ("Reason", "attempt 1 on gpu0@host was lost") in notice.facts
    assert notice.details == ["WorkerLostError: SIGKILL"]
    header = slack_payload(notice)["blocks"][1]["text"]["text"]
    assert header.startswith(":rotating_light:")


def test_a_refused_webhook_raises_one_line_without_the_token(server):
    server.default = lambda request: Reply(404, b"no_service", "text/plain")
    url = f"{server.url}/services/T000/B000/{SLACK_TOKEN}"
    with pytest.raises(IntegrationError) as error:
        SlackWebhook(url, session=http_session(retries=0)).send(run_notice(RUN, SUMMARY))
    message = str(error.value)
    assert message.startswith("Slack webhook: HTTP 404 from POST ***")
    assert message.endswith("no_service")
    assert SLACK_TOKEN not in message and "\n" not in message


def test_an_unreachable_webhook_raises_without_the_url():
    # Nothing listens on the discard port.
    url = f"http://127.0.0.1:9/workflows/x/invoke?sig={TEAMS_SIG}"
    with pytest.raises(IntegrationError) as error:
        TeamsWebhook(url, session=http_session(retries=1, backoff_factor=0)).send(
            run_notice(RUN, SUMMARY)
        )
    message = str(error.value)
    assert message.startswith("Teams webhook: ConnectionError")
    assert TEAMS_SIG not in message and "/workflows/x" not in message


def test_a_webhook_answering_503_is_retried(server):
    server.replies = [Reply(503, b"busy", "text/plain")]
    SlackWebhook(f"{server.url}/hook/{SLACK_TOKEN}", session=http_session(backoff_factor=0)).send(
        run_notice(RUN, SUMMARY)
    )
    assert len(server.requests) == 2
    assert server.requests[0].body == server.requests[1].body


@pytest.fixture
def outcomes_db(tmp_path, monkeypatch):
    with history_db(tmp_path) as db:
        monkeypatch.setenv("DTF_DATABASE_URL", str(db.get_bind().url))
        yield db


def test_the_plugin_follows_notify_on_from_the_task_file_and_the_environment(
    server, outcomes_db, monkeypatch
):
    from dtf.integrations.notify.plugin import SlackNotifier

    run_id = add_run(outcomes_db, 1, {"t::a": "passed"}, status="passed")
    monkeypatch.setenv("DTF_SLACK_WEBHOOK_URL", f"{server.url}/services/{SLACK_TOKEN}")
    passed = {**SUMMARY, "run_id": run_id, "status": "passed", "failures": []}
    run = {**RUN, "id": run_id, "spec": {"integrations": {"notify": {"on": "failure"}}}}

    SlackNotifier().dtf_run_finished(run, passed)  # a passed run, "failure" asked for
    assert server.requests == []
    monkeypatch.setenv("DTF_SLACK_NOTIFY_ON", "always")  # the channel's own setting wins
    SlackNotifier().dtf_run_finished(run, passed)
    assert len(server.requests) == 1
    [outcome] = outcomes_db.scalars(select(IntegrationOutcome)).all()
    assert (outcome.integration, outcome.kind, outcome.ok) == ("slack", "notification", True)

    with pytest.raises(ConfigError, match=r"integrations\.notify\.of: unknown setting"):
        SlackNotifier().dtf_run_finished(
            {**run, "spec": {"integrations": {"notify": {"of": 1}}}}, passed
        )


def test_a_failed_recovery_is_sent_from_the_worker_unless_never(server, outcomes_db, monkeypatch):
    from dtf.integrations.notify.plugin import TeamsNotifier

    run_id = add_run(outcomes_db, 1, {"t::a": "passed"})
    monkeypatch.setenv("DTF_TEAMS_WEBHOOK_URL", f"{server.url}/workflows/x?sig={TEAMS_SIG}")
    recovery = {
        "run_id": run_id,
        "batch_id": "b1",
        "attempt": 2,
        "worker": "w@h",
        "reason": "attempt 1 on v@h was lost",
        "status": "failed",
        "error": "boom",
    }

    TeamsNotifier().dtf_recovery_failed(recovery)
    [request] = server.requests
    card = request.json()["attachments"][0]["content"]
    assert card["body"][0]["text"] == f"dtf: recovery failed for run {run_id[:8]}"
    monkeypatch.setenv("DTF_NOTIFY_ON", "never")
    TeamsNotifier().dtf_recovery_failed(recovery)
    assert len(server.requests) == 1
