"""A real `dtf run` on the embedded default tells Slack what happened; a notifier that
fails is reported in the run's summary, without its secret, and changes nothing else."""

from __future__ import annotations

import json

import pytest

from tests.support.http_recorder import Reply, recording_server
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration

SLACK_TOKEN = "T0AAA/B0BBB/slackSECRETtoken123"
TEAMS_SIG = "teamsSECRETsig0123456789"


def test_a_run_posts_its_counts_to_slack_and_a_refused_teams_post_is_only_reported(tmp_path):
    (tmp_path / "test_few.py").write_text(
        "def test_one():\n    pass\n\ndef test_two():\n    pass\n\n"
        "def test_three():\n    assert 2 + 2 == 5\n"
    )
    (tmp_path / "run.yaml").write_text(
        "name: notify-e2e\n"
        "tasks:\n  - type: test\n    paths: [test_few.py]\n"
        "integrations:\n  slack: {notify_on: failure}\n"
    )
    with recording_server() as server:
        # Teams refuses (400 is not retried); Slack answers as Slack does.
        server.default = lambda request: (
            Reply(400, b"Bad payload", "text/plain")
            if request.path.startswith("/workflows/")
            else Reply(200, b"ok", "text/html")
        )
        env = clean_env(
            DTF_SLACK_WEBHOOK_URL=f"{server.url}/services/{SLACK_TOKEN}",
            DTF_TEAMS_WEBHOOK_URL=f"{server.url}/workflows/x/invoke?sig={TEAMS_SIG}",
        )
        proc = run_dtf("run", "--task-file", "run.yaml", "--workers", "1", env=env, cwd=tmp_path)
        requests = list(server.requests)

    assert proc.returncode == 1, proc.stdout + proc.stderr  # the test failure, nothing else
    status = json.loads(run_dtf("status", "--json", env=env, cwd=tmp_path).stdout)
    assert status["counts"] == {"passed": 2, "failed": 1}

    [slack] = [r for r in requests if r.path.startswith("/services/")]
    assert slack.method == "POST" and slack.headers["content-type"] == "application/json"
    message = slack.json()
    assert message["text"].startswith("dtf run notify-e2e: failed: 2 passed, 1 failed (3 tests)")
    blocks = {b["type"]: b for b in message["blocks"]}
    assert blocks["header"]["text"]["text"] == "dtf run notify-e2e: failed"
    assert any("test_few.py::test_three" in b.get("text", {}).get("text", "")
               for b in message["blocks"])  # fmt: skip
    assert len([r for r in requests if r.path.startswith("/workflows/")]) == 1

    output = proc.stdout + proc.stderr
    assert "INTEGRATION slack: ok" in output
    assert "INTEGRATION teams: failed - dtf_run_finished raised IntegrationError: " in output
    assert "Teams webhook: HTTP 400 from POST" in output
    assert TEAMS_SIG not in output and SLACK_TOKEN not in output
