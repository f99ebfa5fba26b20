"""GitLab: commit status, merge-request note, JUnit for the pipeline, generic-package artefacts.

Settings (environment; a task file's ``dtf.integrations.gitlab`` may set the
non-secret ones):

- ``DTF_GITLAB_TOKEN`` (or ``GITLAB_TOKEN``): a project or personal access token
  with ``api`` scope, sent as ``PRIVATE-TOKEN``; statuses and notes need it (a
  job token may not call those endpoints). Without it the integration is off.
- ``CI_JOB_TOKEN`` (set by GitLab): sent as ``JOB-TOKEN`` to upload artefacts
  to the project's generic package registry (package ``dtf-reports``, version
  the run id); without a job token the access token is used.
- ``CI_API_V4_URL``, ``CI_PROJECT_ID``, ``CI_PIPELINE_ID``, ``CI_PROJECT_DIR``: set by GitLab.
- ``DTF_GITLAB_STATUS_NAME`` / ``status_name``: the status's name (``dtf``).
- ``DTF_GITLAB_JUNIT`` / ``junit``: where the JUnit file is written for
  ``artifacts: reports: junit:`` (default ``$CI_PROJECT_DIR/dtf-junit.xml``).

Endpoints (docs.gitlab.com/api): ``POST /projects/:id/statuses/:sha`` (commits),
``GET|POST /projects/:id/merge_requests/:iid/notes``,
``PUT /projects/:id/merge_requests/:iid/notes/:note_id`` (notes),
``PUT /projects/:id/packages/generic/:name/:version/:file`` (generic packages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from dtf.integrations.calls import call
from dtf.integrations.ci.base import CiProvider, FinishedRun, cut
from dtf.integrations.ci.plugin import CiIntegration

#: GitLab's limit on a note's body, in characters; a status description is cut at 255.
MAX_NOTE = 1_000_000
MAX_DESCRIPTION = 255
# dtf's "pending" is sent while the tests run: GitLab shows that as running.
_STATES = {"pending": "running", "success": "success", "failure": "failed", "error": "failed"}
PACKAGE = "dtf-reports"


class GitLab(CiProvider):
    name = "gitlab"
    task_keys = ("status_name", "junit")
    #: the CI it reports from, and the variable that CI sets (dtf/ci_context.py)
    ci_name = "GitLab CI"
    ci_variable = "GITLAB_CI"

    def __init__(self, job, options, session=None, *, token, job_token, api, project):
        super().__init__(job, options, session)
        self.token = token
        self.job_token = job_token
        self.api = api.rstrip("/")
        self.project = quote(str(project), safe="")
        self.status_name = options.text("status_name", "DTF_GITLAB_STATUS_NAME", "dtf")

    @classmethod
    def configure(cls, job, options, session=None) -> GitLab | None:
        found = cls.settings_for(job, options)
        return None if isinstance(found, str) else cls(job, options, session, **found)

    @classmethod
    def settings_for(cls, job, options) -> dict[str, Any] | str:
        """The provider's settings for ``job``, or what to set (``dtf plugins`` shows it)."""
        token = options.secret("DTF_GITLAB_TOKEN") or options.secret("GITLAB_TOKEN")
        if not token:
            return "set DTF_GITLAB_TOKEN or GITLAB_TOKEN (a token with api scope)"
        api = job.details.get("api_url") or options.text(None, "CI_API_V4_URL")
        if not api:
            return "set CI_API_V4_URL"
        project = job.details.get("project_id") or options.text(None, "CI_PROJECT_ID")
        if not project:
            return "set CI_PROJECT_ID"
        if not job.commit:
            return "no commit: set CI_COMMIT_SHA"
        job_token = options.secret("CI_JOB_TOKEN")
        return {"token": token, "job_token": job_token, "api": api, "project": project}

    @property
    def secrets(self) -> list[str]:
        return [self.token, self.job_token or ""]

    def _url(self, path: str) -> str:
        return f"{self.api}/projects/{self.project}{path}"

    def _call(self, method: str, url: str, what: str, *, job_token: bool = False, **kwargs):
        auth = {"JOB-TOKEN": self.job_token} if job_token and self.job_token else {}
        headers = {**(auth or {"PRIVATE-TOKEN": self.token}), **kwargs.pop("headers", {})}
        return call(
            self.session, method, url, what=f"GitLab {what}", secrets=self.secrets,
            headers=headers, **kwargs,
        )  # fmt: skip

    def set_build_status(self, state: str, description: str) -> str | None:
        body = {
            "state": _STATES[state],
            "name": self.status_name,
            "description": cut(description, MAX_DESCRIPTION, "…"),
        }
        if self.job.build_url:
            body["target_url"] = self.job.build_url
        if self.job.branch:
            body["ref"] = self.job.branch
        if self.job.details.get("pipeline_id"):
            body["pipeline_id"] = int(self.job.details["pipeline_id"])
        self._call("POST", self._url(f"/statuses/{self.job.commit}"), "commit status", json=body)
        return self.job.build_url

    def finish_test_run(self, finished: FinishedRun) -> str | None:
        """Write the JUnit file where the job's ``artifacts: reports: junit:`` picks it up."""
        default = Path(self.job.details.get("project_dir") or ".") / "dtf-junit.xml"
        path = Path(self.options.text("junit", "DTF_GITLAB_JUNIT") or default)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(finished.junit_xml, encoding="utf-8")
        pipeline = self.job.details.get("pipeline_url")
        return f"{pipeline}/test_report" if pipeline else str(path)

    def comment(self, finished: FinishedRun, body: str) -> str | None:
        body = cut(body, MAX_NOTE)
        marker = body.splitlines()[0]
        notes = self._url(f"/merge_requests/{self.job.pull_request}/notes")
        existing = self._find_note(notes, marker)
        if existing is None:
            response = self._call("POST", notes, "merge request note", json={"body": body})
        else:
            url = f"{notes}/{existing}"
            response = self._call("PUT", url, "merge request note", json={"body": body})
        note_id = response.json().get("id")
        web = self.job.details.get("project_url")
        if web and note_id:
            return f"{web}/-/merge_requests/{self.job.pull_request}#note_{note_id}"
        return None

    def _find_note(self, notes_url: str, marker: str) -> int | None:
        page: str | None = "1"
        found = None
        while page:
            params = {"per_page": 100, "page": page, "sort": "asc", "order_by": "created_at"}
            response = self._call("GET", notes_url, "merge request notes", params=params)
            for note in response.json():
                if not note.get("system") and (note.get("body") or "").startswith(marker):
                    found = note["id"]
            page = response.headers.get("X-Next-Page") or None
        return found

    def upload_artifact(
        self, finished: FinishedRun, name: str, data: bytes, content_type: str
    ) -> str | None:
        version = quote(str(finished.run["id"]), safe="")
        url = self._url(f"/packages/generic/{PACKAGE}/{version}/{quote(name, safe='')}")
        headers = {"Content-Type": content_type}
        self._call("PUT", url, "artifact upload", job_token=True, data=data, headers=headers)
        return url


plugin = CiIntegration(GitLab)
