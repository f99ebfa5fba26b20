"""JIRA: one issue per test that keeps failing, found again by a label, never duplicated.

Uses the REST API **v2** (``/rest/api/2``), which Jira Cloud and Jira Data Center
both serve and whose ``description`` and comment ``body`` are plain strings (wiki
markup); v3 would need Atlassian Document Format and exists on Cloud only.

- search: Cloud ``GET /rest/api/2/search/jql`` (the older ``/search`` is gone
  there), Data Center ``GET /rest/api/2/search``; same parameters ``jql``,
  ``maxResults``, ``fields``; the response holds ``issues`` with ``key``;
- create: ``POST /rest/api/2/issue`` with ``fields`` (``project.key``,
  ``summary``, ``description``, ``issuetype.name``, ``labels``), answered
  ``201`` with ``{"id", "key", "self"}``;
- comment: ``POST /rest/api/2/issue/{key}/comment`` with ``{"body"}``, ``201``.

Authentication: Basic ``email:API token`` (Cloud) or ``user:password``, or a
Bearer personal access token (Data Center) when no user is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from dtf.integrations.calls import call
from dtf.integrations.http import IntegrationError, http_session
from dtf.integrations.trackers.history import FailingTest

API = "/rest/api/2"
DEPLOYMENTS = ("cloud", "datacenter")
SUMMARY_MAX = 255
_DESCRIPTION_MAX = 30000
_LONGREPR_MAX = 6000


def deployment_of(url: str) -> str:
    """``cloud`` for an Atlassian-hosted site (``*.atlassian.net``), else ``datacenter``."""
    host = urlsplit(url).hostname or ""
    return "cloud" if host == "atlassian.net" or host.endswith(".atlassian.net") else "datacenter"


def label_for(nodeid: str) -> str:
    """The label that finds a test's issue again: ``dtf-`` and a hash of its id.

    JIRA labels cannot hold spaces and are at most 255 characters; test ids can.
    """
    return "dtf-" + hashlib.sha256(nodeid.encode()).hexdigest()[:16]


def jql_string(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_issue_jql(project: str, label: str) -> str:
    """Unresolved issues of ``project`` carrying ``label``, newest first."""
    return (
        f"project = {jql_string(project)} AND labels = {jql_string(label)} "
        "AND statusCategory != Done ORDER BY created DESC"
    )


@dataclass(frozen=True)
class JiraSettings:
    url: str
    project: str
    token: str
    user: str | None = None
    issue_type: str = "Bug"
    labels: Sequence[str] = ("dtf",)
    deployment: str | None = None


class JiraClient:
    """The three calls dtf makes: search, create an issue, comment on one."""

    def __init__(self, settings: JiraSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/") + API
        self.deployment = settings.deployment or deployment_of(settings.url)
        self.session = session or http_session()
        # Creating an issue is not safe to repeat: a 502 after JIRA created it would
        # make a retry file a duplicate. It is sent once, and looked for on failure.
        self.once = http_session(retries=0)
        for http in (self.session, self.once):
            http.headers["Accept"] = "application/json"
            if settings.user:
                http.auth = (settings.user, settings.token)
            else:
                http.headers["Authorization"] = f"Bearer {settings.token}"
        self.secrets = [settings.token]

    def _call(self, method: str, path: str, what: str, *, once: bool = False, **kwargs) -> Any:
        response = call(
            self.once if once else self.session, method, self.base + path,
            what=f"JIRA {what}", secrets=self.secrets, **kwargs,
        )  # fmt: skip
        return response.json() if response.content else None

    def find_open_issue(self, label: str) -> str | None:
        """The key of the newest unresolved issue with ``label`` in the project, or None."""
        path = "/search/jql" if self.deployment == "cloud" else "/search"
        found = self._call(
            "GET",
            path,
            "search",
            params={
                "jql": open_issue_jql(self.settings.project, label),
                "maxResults": 1,
                "fields": "summary,status",
            },
        )
        issues = (found or {}).get("issues") or []
        return issues[0]["key"] if issues else None

    def create_issue(self, summary: str, description: str, labels: Sequence[str]) -> str:
        """Create an issue; its key (``ML-12``)."""
        created = self._call(
            "POST",
            "/issue",
            "create issue",
            once=True,
            json={
                "fields": {
                    "project": {"key": self.settings.project},
                    "summary": _cut(summary, SUMMARY_MAX),
                    "description": _cut(description, _DESCRIPTION_MAX),
                    "issuetype": {"name": self.settings.issue_type},
                    "labels": list(dict.fromkeys(labels)),
                }
            },
        )
        return created["key"]

    def add_comment(self, key: str, body: str) -> None:
        self._call(
            "POST",
            f"/issue/{quote(key, safe='')}/comment",
            f"comment on {key}",
            json={"body": _cut(body, _DESCRIPTION_MAX)},
        )


def issue_summary(test: FailingTest) -> str:
    return f"[dtf] {test.nodeid} fails ({test.outcome.replace('_', ' ')})"


def issue_description(test: FailingTest, run: dict[str, Any]) -> str:
    """Wiki-markup description: the test, its streak, the failure, where it ran."""
    lines = [
        f"The test {{{{{test.nodeid}}}}} failed in {test.streak} dtf runs in a row.",
        "",
        f"*Suite:* {test.suite}",
        f"*Latest run:* {run.get('id')}" + (f" ({run['name']})" if run.get("name") else ""),
        f"*Outcome:* {test.outcome}",
        f"*Runs (newest first):* {', '.join(test.runs)}",
    ]
    lines += _ci_lines(run)
    if test.longrepr:
        lines += ["", "{noformat}", _tail(test.longrepr, _LONGREPR_MAX), "{noformat}"]
    lines += ["", f"Filed by dtf; the label {label_for(test.nodeid)} finds this issue again."]
    return "\n".join(lines)


def comment_body(test: FailingTest, run: dict[str, Any]) -> str:
    lines = [
        f"Still failing in dtf run {run.get('id')}: {test.outcome}, {test.streak} runs in a row."
    ]
    lines += _ci_lines(run)
    if test.message:
        lines += ["{noformat}", _tail(test.message, 2000), "{noformat}"]
    return "\n".join(lines)


@dataclass(frozen=True)
class TrackerAction:
    """What a tracker did for one test: ``created``, ``commented``."""

    action: str
    key: str
    nodeid: str

    def __str__(self) -> str:
        return f"{self.action} {self.key} for {self.nodeid}"


def report_failing_test(
    client: JiraClient, test: FailingTest, run: dict[str, Any]
) -> TrackerAction:
    """Comment on the test's open issue, or open one when there is none."""
    label = label_for(test.nodeid)
    existing = client.find_open_issue(label)
    if existing:
        client.add_comment(existing, comment_body(test, run))
        return TrackerAction("commented", existing, test.nodeid)
    labels = [*client.settings.labels, label]
    try:
        key = client.create_issue(issue_summary(test), issue_description(test, run), labels)
    except IntegrationError:
        # The answer may have been lost after JIRA created it.
        key = client.find_open_issue(label)
        if key is None:
            raise
    return TrackerAction("created", key, test.nodeid)


def _ci_lines(run: dict[str, Any]) -> list[str]:
    ci = run.get("ci") or {}
    names = (("Branch", "branch"), ("Commit", "commit"), ("Build", "build_url"))
    return [f"*{label}:* {ci[key]}" for label, key in names if ci.get(key)]


def _tail(text: str, limit: int) -> str:
    # The end of a traceback says what went wrong.
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
