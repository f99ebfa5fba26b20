"""JIRA and TestRail as dtf plugins, both acting when a run finishes (coordinator).

JIRA files (or comments on) an issue for each test failing ``threshold`` runs in
a row; TestRail adds the run's results to a TestRail test run. Each does nothing
until its URL is set. A failure raises; the plugin manager records it as the
integration's outcome of the run, and the run's result does not change.
``dtf plugins`` says whether each is set up (``dtf_configured``), from the
same settings the hooks read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dtf.integrations.http import IntegrationError
from dtf.integrations.settings import ConfigError, Options
from dtf.integrations.trackers.history import failing_tests, with_streaks
from dtf.integrations.trackers.jira import (
    DEPLOYMENTS,
    JiraClient,
    JiraSettings,
    report_failing_test,
)
from dtf.integrations.trackers.testrail import (
    TestRailClient,
    case_results,
    parse_status_map,
    result_payload,
)

from dtf.config import load_settings
from dtf.db.session import session_scope
from dtf.plugins import hookimpl
from dtf.plugins.outcomes import record_outcome

logger = logging.getLogger("dtf.integrations.trackers")


class JiraTracker:
    """An issue per test failing N runs in a row (``DTF_JIRA_URL``, ``_TOKEN``, ``_PROJECT``)."""

    dtf_plugin_kind = "integration"
    dtf_plugin_name = "jira"
    task_keys = ("project", "threshold", "issue_type", "labels", "max_issues")

    @property
    def dtf_settings_keys(self) -> dict[str, tuple[str, ...]]:
        return {self.dtf_plugin_name: self.task_keys}

    def dtf_configured(self, env: Mapping[str, str]) -> bool | str:
        try:
            settings = jira_settings(Options(self.dtf_plugin_name, env=env))
        except ConfigError as exc:
            return str(exc)
        return True if settings else "set DTF_JIRA_URL, DTF_JIRA_TOKEN and DTF_JIRA_PROJECT"

    @hookimpl
    def dtf_run_finished(self, run: dict[str, Any], summary: dict[str, Any]) -> None:
        options = Options.for_run(self.dtf_plugin_name, run)
        options.check_keys(self.task_keys)
        settings = jira_settings(options)
        if settings is None or summary.get("status") == "passed":
            return
        threshold = options.integer("threshold", "DTF_JIRA_THRESHOLD", 3, minimum=1)
        limit = options.integer("max_issues", "DTF_JIRA_MAX_ISSUES", 10, minimum=1)
        with session_scope(load_settings().database_url) as session:
            tests = with_streaks(session, run["id"], failing_tests(session, run["id"]))
        due = [t for t in tests if t.streak >= threshold]
        if not due:
            return
        client = JiraClient(settings)
        errors: list[str] = []
        for test in due[:limit]:
            try:
                action = report_failing_test(client, test, run)
            except IntegrationError as exc:
                errors.append(str(exc))
                continue
            logger.info("dtf: jira: %s", action)
            browse = f"{settings.url.rstrip('/')}/browse/{action.key}"
            record_outcome(run["id"], "jira", ok=True, url=browse, kind=self.dtf_plugin_kind)
        if len(due) > limit:
            record_outcome(
                run["id"], "jira", ok=False, kind=self.dtf_plugin_kind,
                error=f"{len(due) - limit} more tests failing {threshold}+ runs in a row were "
                f"not filed (DTF_JIRA_MAX_ISSUES={limit})",
            )  # fmt: skip
        if errors:
            raise IntegrationError(
                f"{len(errors)} of {min(len(due), limit)} tests not filed; first: {errors[0]}"
            )


def jira_settings(options: Options) -> JiraSettings | None:
    url = options.text(None, "DTF_JIRA_URL")
    if not url:
        return None
    token = options.secret("DTF_JIRA_TOKEN")
    if not token:
        raise ConfigError(
            "DTF_JIRA_URL is set but DTF_JIRA_TOKEN is not: an API token (with DTF_JIRA_USER, "
            "the account's email) or a personal access token"
        )
    project = options.text("project", "DTF_JIRA_PROJECT")
    if not project:
        raise ConfigError(
            "DTF_JIRA_URL is set but DTF_JIRA_PROJECT is not: a project key "
            "(or integrations.jira.project in the task file)"
        )
    deployment = options.text(None, "DTF_JIRA_DEPLOYMENT")
    if deployment and deployment not in DEPLOYMENTS:
        raise ConfigError(
            f"DTF_JIRA_DEPLOYMENT: expected one of {', '.join(DEPLOYMENTS)}, got {deployment!r}"
        )
    return JiraSettings(
        url=url,
        project=project,
        token=token,
        user=options.text(None, "DTF_JIRA_USER"),
        issue_type=options.text("issue_type", "DTF_JIRA_ISSUE_TYPE", "Bug") or "Bug",
        labels=["dtf", *options.words("labels", "DTF_JIRA_LABELS")],
        deployment=deployment,
    )


class TestRailReporter:
    """Results per case id into a TestRail run (``DTF_TESTRAIL_URL``, ``_RUN_ID``, ...)."""

    __test__ = False
    dtf_plugin_kind = "integration"
    dtf_plugin_name = "testrail"
    task_keys = ("run_id", "version")

    @property
    def dtf_settings_keys(self) -> dict[str, tuple[str, ...]]:
        return {self.dtf_plugin_name: self.task_keys}

    def dtf_configured(self, env: Mapping[str, str]) -> bool | str:
        try:
            settings = testrail_settings(Options(self.dtf_plugin_name, env=env))
        except ConfigError as exc:
            return str(exc)
        if settings is None:
            return (
                "set DTF_TESTRAIL_URL, DTF_TESTRAIL_USER, DTF_TESTRAIL_API_KEY and "
                "DTF_TESTRAIL_RUN_ID"
            )
        return True

    @hookimpl
    def dtf_run_finished(self, run: dict[str, Any], summary: dict[str, Any]) -> None:
        options = Options.for_run(self.dtf_plugin_name, run)
        options.check_keys(self.task_keys)
        settings = testrail_settings(options)
        if settings is None:
            return
        commit = (run.get("ci") or {}).get("commit")
        version = options.text("version", "DTF_TESTRAIL_VERSION") or (
            str(commit)[:12] if commit else None
        )
        with session_scope(load_settings().database_url) as session:
            cases = case_results(session, run["id"])
        results = result_payload(cases, settings.status_map, run=run, version=version)
        if not results:
            return
        client = TestRailClient(settings.url, settings.user, settings.api_key)
        client.add_results_for_cases(settings.run_id, results)
        record_outcome(
            run["id"], "testrail", ok=True, kind=self.dtf_plugin_kind,
            url=f"{settings.url.rstrip('/')}/index.php?/runs/view/{settings.run_id}",
        )  # fmt: skip


@dataclass(frozen=True)
class TestRailSettings:
    """Where a run's results go: the server, its credentials, the TestRail run."""

    __test__ = False
    url: str
    user: str
    api_key: str = field(repr=False)
    run_id: int
    status_map: dict[str, int | None]


def testrail_settings(options: Options) -> TestRailSettings | None:
    """The settings from ``DTF_TESTRAIL_*`` (``run_id`` also from the task file); None when
    ``DTF_TESTRAIL_URL`` is not set; ConfigError naming what else is missing."""
    url = options.text(None, "DTF_TESTRAIL_URL")
    if not url:
        return None
    user = options.text(None, "DTF_TESTRAIL_USER")
    api_key = options.secret("DTF_TESTRAIL_API_KEY")
    if not user or not api_key:
        raise ConfigError(
            "DTF_TESTRAIL_URL is set but DTF_TESTRAIL_USER or DTF_TESTRAIL_API_KEY is not"
        )
    run_id = options.integer("run_id", "DTF_TESTRAIL_RUN_ID", 0, minimum=0)
    if not run_id:
        raise ConfigError(
            "DTF_TESTRAIL_URL is set but no TestRail run id: set DTF_TESTRAIL_RUN_ID "
            "or integrations.testrail.run_id in the task file"
        )
    status_map = parse_status_map(options.text(None, "DTF_TESTRAIL_STATUS_MAP") or "")
    return TestRailSettings(url, user, api_key, run_id, status_map)
