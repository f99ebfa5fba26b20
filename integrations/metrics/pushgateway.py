"""Run metrics pushed to a Prometheus Pushgateway when a run ends.

``POST /metrics/job/<job>{/<label>/<value>}`` with the text exposition format
replaces the metrics of that group that have the same names as those pushed, so
the group holds the latest run of the job (its counts by outcome, test total,
duration, exit code, whether it passed, when it finished) and keeps
``dtf_run_last_success_timestamp_seconds`` from the last run that passed, which
a failed run does not push: alert on its age, as the Pushgateway's documentation
advises. (A PUT would replace the whole group and lose it.) The run id, status and
CI context go in an info metric, not in the grouping key: one group per run
would grow the Pushgateway without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import requests
from dtf.integrations.calls import call, url_password
from dtf.integrations.http import http_session
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from dtf.summary import FAILING_OUTCOMES

DEFAULT_JOB = "dtf"


def run_registry(run: Mapping[str, Any], summary: Mapping[str, Any]) -> CollectorRegistry:
    """A fresh registry holding the metrics of one finished run."""
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, value: float) -> None:
        Gauge(name, documentation, registry=registry).set(value)

    counts = summary.get("counts") or {}
    tests = Gauge("dtf_run_tests", "Test results of the run by outcome", ["outcome"],
                  registry=registry)  # fmt: skip
    for outcome, count in sorted(counts.items()):
        tests.labels(outcome).set(count)
    gauge("dtf_run_tests_total", "Tests the run planned", summary.get("total") or 0)
    gauge(
        "dtf_run_failing_tests",
        "Tests that failed, errored, crashed, timed out or ran out of memory",
        sum(counts.get(o, 0) for o in FAILING_OUTCOMES),
    )
    gauge(
        "dtf_run_exit_code",
        "The run's exit code (0 passed, 1 test failures, 3 infrastructure)",
        summary.get("exit_code") or 0,
    )
    passed = summary.get("status") == "passed"
    gauge("dtf_run_success", "1 when the run passed, else 0", int(passed))
    gauge("dtf_run_broken_tasks", "Batches and commands that could not run",
          len(summary.get("broken") or []))  # fmt: skip
    started, finished = _time(run.get("started_at")), _time(run.get("finished_at"))
    finished_ts = (finished or datetime.now(timezone.utc)).timestamp()
    if started is not None and finished is not None:
        gauge("dtf_run_duration_seconds", "Wall time from the run's start to its verdict",
              max(0.0, (finished - started).total_seconds()))  # fmt: skip
    gauge("dtf_run_last_finished_timestamp_seconds", "When the run finished (Unix time)",
          finished_ts)  # fmt: skip
    if passed:
        gauge("dtf_run_last_success_timestamp_seconds", "When a run of this job last passed",
              finished_ts)  # fmt: skip
    ci = run.get("ci") or {}
    info = Gauge(
        "dtf_run_info",
        "The run this group's values come from",
        ["run_id", "name", "status", "branch", "commit"],
        registry=registry,
    )
    info.labels(
        str(run.get("id") or summary.get("run_id") or ""),
        str(run.get("name") or ""),
        str(summary.get("status") or ""),
        str(ci.get("branch") or ""),
        str(ci.get("commit") or ""),
    ).set(1)
    return registry


def push_run_metrics(
    gateway: str,
    registry: CollectorRegistry,
    *,
    job: str = DEFAULT_JOB,
    grouping_key: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
    password: str | None = None,
) -> None:
    """POST ``registry`` to the Pushgateway's group ``job`` + ``grouping_key``.

    Basic credentials come from ``session.auth`` or the URL (``http://user:pass@host``);
    ``password`` is kept out of error messages.
    """
    pushadd_to_gateway(
        gateway,
        job=job,
        registry=registry,
        grouping_key=dict(grouping_key or {}),
        handler=_requests_handler(session or http_session(), gateway, [password]),
    )


def _requests_handler(
    session: requests.Session, gateway: str, secrets: list[str | None]
) -> Callable:
    """A prometheus_client push handler that sends through dtf's retrying session."""

    def handler(url: str, method: str, timeout, headers, data: bytes) -> Callable[[], None]:
        def send() -> None:
            call(
                session,
                method,
                url,
                what="Pushgateway",
                secrets=[*url_password(gateway), *secrets],
                headers=dict(headers),
                data=data,
            )

        return send

    return handler


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
