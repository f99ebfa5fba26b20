"""GitHub: commit status, check run, and the pull-request comment (REST API v3).

Settings (environment; a task file's ``dtf.integrations.github`` may set the
non-secret ones):

- ``GITHUB_TOKEN`` (or ``DTF_GITHUB_TOKEN``): a token allowed to write statuses,
  checks and pull-request comments (in Actions: ``permissions: statuses: write,
  checks: write, pull-requests: write``). Without it the integration is off.
- ``GITHUB_REPOSITORY``, ``GITHUB_API_URL``: set by Actions.
- ``DTF_GITHUB_STATUS_CONTEXT`` / ``status_context``: the status's name (``dtf``).
- ``DTF_GITHUB_CHECKS`` / ``checks``: also create a check run (the test run; needs
  a token of a GitHub App or Actions' ``GITHUB_TOKEN``), default false.

Endpoints (docs.github.com/rest, ``X-GitHub-Api-Version: 2022-11-28``):
``POST /repos/{owner}/{repo}/statuses/{sha}``, ``POST /repos/{owner}/{repo}/check-runs``,
``PATCH /repos/{owner}/{repo}/check-runs/{id}``,
``GET|POST /repos/{owner}/{repo}/issues/{number}/comments``,
``PATCH /repos/{owner}/{repo}/issues/comments/{id}``.

GitHub has no REST endpoint that uploads a workflow artefact from a job step
(``actions/upload-artifact`` uses a runtime token only actions get), so
``upload_artifact`` is not offered: upload the report files with that action.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from dtf.integrations.calls import call
from dtf.integrations.ci.base import CiProvider, FinishedRun, comment_marker, cut
from dtf.integrations.ci.plugin import CiIntegration
from dtf.integrations.http import IntegrationError

API_VERSION = "2022-11-28"
#: GitHub's limits: a status description 140 characters, a comment or a check
#: run's summary 65536.
MAX_DESCRIPTION = 140
MAX_BODY = 65000
_STATES = {"pending": "pending", "success": "success", "failure": "failure", "error": "error"}
_CONCLUSIONS = {"success": "success", "failure": "failure", "error": "failure"}
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHub(CiProvider):
    name = "github"
    task_keys = ("status_context", "checks")
    #: the CI it reports from, and the variable that CI sets (dtf/ci_context.py)
    ci_name = "GitHub Actions"
    ci_variable = "GITHUB_ACTIONS"

    def __init__(self, job, options, session=None, *, token: str, repository: str, api: str):
        super().__init__(job, options, session)
        self.token = token
        self.repository = repository
        self.api = api.rstrip("/")
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            }
        )
        self.context = options.text("status_context", "DTF_GITHUB_STATUS_CONTEXT", "dtf")
        self.checks = options.boolean("checks", "DTF_GITHUB_CHECKS", False)

    @classmethod
    def configure(cls, job, options, session=None) -> GitHub | None:
        found = cls.settings_for(job, options)
        return None if isinstance(found, str) else cls(job, options, session, **found)

    @classmethod
    def settings_for(cls, job, options) -> dict[str, Any] | str:
        """The provider's settings for ``job``, or what to set (``dtf plugins`` shows it)."""
        token = options.secret("DTF_GITHUB_TOKEN") or options.secret("GITHUB_TOKEN")
        if not token:
            return "set GITHUB_TOKEN or DTF_GITHUB_TOKEN"
        repository = job.details.get("repository") or options.text(None, "GITHUB_REPOSITORY")
        if not repository:
            return "set GITHUB_REPOSITORY"
        if not job.commit:
            return "no commit: set GITHUB_SHA"
        api = job.details.get("api_url") or options.text(
            None, "GITHUB_API_URL", "https://api.github.com"
        )
        return {"token": token, "repository": repository, "api": api}

    @property
    def secrets(self) -> list[str]:
        return [self.token]

    def _url(self, path: str) -> str:
        return f"{self.api}/repos/{self.repository}{path}"

    def _call(self, method: str, url: str, what: str, **kwargs):
        return call(
            self.session, method, url, what=f"GitHub {what}", secrets=self.secrets, **kwargs
        )

    def set_build_status(self, state: str, description: str) -> str | None:
        body: dict[str, Any] = {
            "state": _STATES[state],
            "description": cut(description, MAX_DESCRIPTION, "…"),
            "context": self.context,
        }
        if self.job.build_url:
            body["target_url"] = self.job.build_url
        self._call("POST", self._url(f"/statuses/{self.job.commit}"), "commit status", json=body)
        return self.job.build_url

    def start_test_run(self, run: Mapping[str, Any]) -> str | None:
        if not self.checks:
            return None
        body = {
            "name": self.context,
            "head_sha": self.job.commit,
            "status": "in_progress",
            "external_id": run["id"],
            "started_at": _now(),
        }
        if self.job.build_url:
            body["details_url"] = self.job.build_url
        created = self._call("POST", self._url("/check-runs"), "check run", json=body).json()
        self.memory["check_run_id"] = created["id"]
        return created.get("html_url")

    def finish_test_run(self, finished: FinishedRun) -> str | None:
        if not self.checks:
            return None
        body: dict[str, Any] = {
            "name": self.context,
            "head_sha": self.job.commit,
            "status": "completed",
            "conclusion": _CONCLUSIONS[finished.state],
            "completed_at": _now(),
            "external_id": finished.run["id"],
            "output": {
                "title": cut(finished.headline, 255, "…"),
                "summary": cut(finished.markdown, MAX_BODY),
            },
        }
        if self.job.build_url:
            body["details_url"] = self.job.build_url
        check_run_id = self.memory.get("check_run_id")
        if check_run_id is None:  # `dtf wait` in another process: create it finished
            response = self._call("POST", self._url("/check-runs"), "check run", json=body)
        else:
            url = self._url(f"/check-runs/{check_run_id}")
            response = self._call("PATCH", url, "check run", json=body)
        return response.json().get("html_url")

    def comment(self, finished: FinishedRun, body: str) -> str | None:
        body = cut(body, MAX_BODY)
        marker = body.splitlines()[0]
        existing = self._find_comment(marker)
        if existing is None:
            url = self._url(f"/issues/{self.job.pull_request}/comments")
            response = self._call("POST", url, "pull request comment", json={"body": body})
        else:
            url = self._url(f"/issues/comments/{existing}")
            response = self._call("PATCH", url, "pull request comment", json={"body": body})
        return response.json().get("html_url")

    def _find_comment(self, marker: str) -> int | None:
        """The id of dtf's earlier comment with this marker (the newest if several)."""
        if not marker.startswith(comment_marker("")[:-4]):
            raise IntegrationError("GitHub pull request comment: body has no dtf marker")
        url: str | None = self._url(f"/issues/{self.job.pull_request}/comments")
        params: dict[str, Any] | None = {"per_page": 100}
        found = None
        while url:
            response = self._call("GET", url, "pull request comments", params=params)
            for comment in response.json():
                if (comment.get("body") or "").startswith(marker):
                    found = comment["id"]
            match = _NEXT_LINK.search(response.headers.get("Link", ""))
            url, params = (match.group(1), None) if match else (None, None)
        return found


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


plugin = CiIntegration(GitHub)
