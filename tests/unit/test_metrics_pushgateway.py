"""Run metrics pushed to a Pushgateway: POST to /metrics/job/<job>/<label>/<value>,
text exposition format, Basic auth, errors without the password."""

from __future__ import annotations

import base64

import pytest
from dtf.integrations.http import IntegrationError, http_session
from dtf.integrations.metrics.pushgateway import push_run_metrics, run_registry
from dtf.integrations.settings import ConfigError, Options
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from dtf.db.models import IntegrationOutcome
from tests.support.http_recorder import Reply, recording_server
from tests.support.run_history import add_run, history_db
from tests.unit.test_notify_webhooks import RUN, SUMMARY

PASSWORD = "push-SECRET-pass"


@pytest.fixture
def gateway():
    with recording_server() as server:
        yield server


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_the_run_is_posted_to_its_group_in_the_text_format(gateway):
    push_run_metrics(
        gateway.url, run_registry(RUN, SUMMARY), job="gpu-ci", grouping_key={"branch": "main"}
    )

    [request] = gateway.requests
    # POST replaces the pushed metrics only: the last success of an earlier run stays.
    assert request.method == "POST"
    assert request.path == "/metrics/job/gpu-ci/branch/main"
    assert request.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    values = samples(request.body)
    assert values[("dtf_run_tests", (("outcome", "passed"),))] == 7
    assert values[("dtf_run_tests", (("outcome", "failed"),))] == 2
    assert values[("dtf_run_tests_total", ())] == 10
    assert values[("dtf_run_failing_tests", ())] == 2
    assert values[("dtf_run_exit_code", ())] == 1
    assert values[("dtf_run_success", ())] == 0
    assert values[("dtf_run_duration_seconds", ())] == 72.5
    assert values[("dtf_run_last_finished_timestamp_seconds", ())] == pytest.approx(1735787117.5)
    assert ("dtf_run_last_success_timestamp_seconds", ()) not in values  # it failed
    info = [k for k in values if k[0] == "dtf_run_info"]
    assert dict(info[0][1]) == {
        "run_id": RUN["id"], "name": "nightly-gpu", "status": "failed", "branch": "main",
        "commit": "0123456789abcdef0123",
    }  # fmt: skip
    assert b"# TYPE dtf_run_tests gauge" in request.body


def test_a_grouping_value_with_a_slash_is_base64_encoded(gateway):
    push_run_metrics(gateway.url, run_registry(RUN, SUMMARY), grouping_key={"branch": "feat/x"})
    # The Pushgateway's documented encoding for values a path segment cannot hold.
    assert gateway.requests[0].path == "/metrics/job/dtf/branch@base64/ZmVhdC94"


def test_basic_auth_and_an_error_without_the_password(gateway):
    gateway.default = lambda request: Reply(401, b"unauthorized", "text/plain")
    session = http_session(retries=0)
    session.auth = ("pusher", PASSWORD)
    with pytest.raises(IntegrationError) as error:
        push_run_metrics(gateway.url, run_registry(RUN, SUMMARY), session=session,
                         password=PASSWORD)  # fmt: skip
    basic = base64.b64encode(f"pusher:{PASSWORD}".encode()).decode()
    assert gateway.requests[0].headers["authorization"] == f"Basic {basic}"
    message = str(error.value)
    assert message.startswith("Pushgateway: HTTP 401 from POST http://127.0.0.1:")
    assert PASSWORD not in message


def test_credentials_in_the_gateway_url_are_used_and_hidden(gateway):
    gateway.default = lambda request: Reply(503, b"down", "text/plain")
    url = gateway.url.replace("http://", f"http://pusher:{PASSWORD}@")
    with pytest.raises(IntegrationError) as error:
        push_run_metrics(url, run_registry(RUN, SUMMARY), session=http_session(retries=0))
    assert gateway.requests[0].headers["authorization"].startswith("Basic ")
    assert PASSWORD not in str(error.value) and "pusher:" not in str(error.value)


def test_the_plugin_pushes_where_configured_and_records_the_outcome(gateway, tmp_path, monkeypatch):
    from dtf.integrations.metrics.plugin import PushgatewayMetrics, grouping_key

    with history_db(tmp_path) as db:
        run_id = add_run(db, 1, {"t::a": "passed"}, status="passed")
        monkeypatch.setenv("DTF_DATABASE_URL", str(db.get_bind().url))
        monkeypatch.setenv("DTF_PUSHGATEWAY_URL", gateway.url)
        monkeypatch.setenv("DTF_PUSHGATEWAY_GROUPING", "team=ml, cluster=gpu")
        run = {**RUN, "id": run_id, "spec": {"integrations": {"pushgateway": {"job": "nightly"}}}}
        passed = {**SUMMARY, "status": "passed", "exit_code": 0, "counts": {"passed": 10}}

        PushgatewayMetrics().dtf_run_finished(run, passed)

        [request] = gateway.requests
        assert request.path == "/metrics/job/nightly/cluster/gpu/team/ml"
        assert samples(request.body)[("dtf_run_success", ())] == 1
        [outcome] = db.scalars(select(IntegrationOutcome)).all()
        assert (outcome.integration, outcome.ok) == ("pushgateway", True)

    with pytest.raises(ConfigError, match="DTF_PUSHGATEWAY_GROUPING: bad entry 'team'"):
        grouping_key(Options("pushgateway", env={"DTF_PUSHGATEWAY_GROUPING": "team"}))
    assert grouping_key(Options("pushgateway", env={}, task={"grouping": {"a": 1}})) == {"a": "1"}
