"""Azure DevOps: a test run with every result, attachments, a build tag, a pull-request comment.

Settings (environment; a task file's ``dtf.integrations.azure`` may set the
non-secret ones):

- ``DTF_AZURE_TOKEN``: a personal access token (scopes: Test Management read &
  write, Build read & execute, Code read & write for comments), sent with HTTP
  basic auth and an empty user name. Or ``SYSTEM_ACCESSTOKEN`` (map
  ``$(System.AccessToken)`` into the step's env), sent as a bearer token.
  Without either the integration is off.
- ``SYSTEM_COLLECTIONURI``, ``SYSTEM_TEAMPROJECT``, ``BUILD_BUILDID``,
  ``BUILD_BUILDURI``, ``BUILD_REPOSITORY_ID``, ``BUILD_REPOSITORY_PROVIDER``: set by
  Azure Pipelines.

REST API version ``7.1`` (learn.microsoft.com/rest/api/azure/devops):
``POST {project}/_apis/test/runs`` (Runs - Create),
``POST {project}/_apis/test/Runs/{runId}/results`` (Results - Add),
``PATCH {project}/_apis/test/runs/{runId}`` with ``state: Completed`` (Runs - Update),
``POST {project}/_apis/test/Runs/{runId}/attachments`` (Attachments - Create Test Run
Attachment), ``PUT {project}/_apis/build/builds/{buildId}/tags/{tag}`` (Tags - Add
Build Tag), ``GET|POST {project}/_apis/git/repositories/{repo}/pullRequests/{id}/threads``
and ``PATCH .../threads/{threadId}/comments/{commentId}`` (Pull Request Threads and
Comments, Azure Repos only).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from dtf.integrations.calls import call
from dtf.integrations.ci.base import CiProvider, FinishedRun, NotOffered, cut
from dtf.integrations.ci.plugin import CiIntegration

API_VERSION = "7.1"
#: results sent per Results - Add request
RESULTS_PER_REQUEST = 500
MAX_COMMENT = 150_000
MAX_ERROR = 4000
#: dtf outcome -> Azure DevOps TestOutcome
OUTCOMES = {
    "passed": "Passed",
    "failed": "Failed",
    "error": "Error",
    "skipped": "NotExecuted",
    "xfailed": "NotExecuted",
    "xpassed": "Passed",
    "crashed": "Aborted",
    "timed_out": "Timeout",
}
TAGS = {
    "pending": "dtf-running",
    "success": "dtf-passed",
    "failure": "dtf-failed",
    "error": "dtf-error",
}


class Azure(CiProvider):
    name = "azure"
    #: the CI it reports from, and the variable that CI sets (dtf/ci_context.py)
    ci_name = "Azure Pipelines"
    ci_variable = "TF_BUILD"

    def __init__(self, job, options, session=None, *, pat, bearer, collection, project):
        super().__init__(job, options, session)
        self.pat = pat
        self.bearer = bearer
        if pat:
            self.session.auth = ("", pat)
        else:
            self.session.headers["Authorization"] = f"Bearer {bearer}"
        self.base = f"{collection.rstrip('/')}/{quote(project, safe='')}/_apis"

    @classmethod
    def configure(cls, job, options, session=None) -> Azure | None:
        found = cls.settings_for(job, options)
        return None if isinstance(found, str) else cls(job, options, session, **found)

    @classmethod
    def settings_for(cls, job, options) -> dict[str, Any] | str:
        """The provider's settings for ``job``, or what to set (``dtf plugins`` shows it)."""
        pat = options.secret("DTF_AZURE_TOKEN")
        bearer = options.secret("SYSTEM_ACCESSTOKEN")
        if not (pat or bearer):
            return "set DTF_AZURE_TOKEN, or SYSTEM_ACCESSTOKEN to $(System.AccessToken)"
        collection = job.details.get("collection_uri")
        if not collection:
            return "set SYSTEM_COLLECTIONURI"
        project = job.details.get("project")
        if not project:
            return "set SYSTEM_TEAMPROJECT"
        return {"pat": pat, "bearer": bearer, "collection": collection, "project": project}

    @property
    def secrets(self) -> list[str]:
        encoded = base64.b64encode(f":{self.pat}".encode()).decode() if self.pat else ""
        return [self.pat or "", self.bearer or "", encoded]

    def _call(self, method: str, path: str, what: str, **kwargs):
        params = {"api-version": API_VERSION, **kwargs.pop("params", {})}
        return call(
            self.session, method, f"{self.base}{path}", what=f"Azure DevOps {what}",
            secrets=self.secrets, params=params, **kwargs,
        )  # fmt: skip

    def start_test_run(self, run: Mapping[str, Any]) -> str | None:
        return self._create_run(run, state="InProgress")

    def _create_run(self, run: Mapping[str, Any], state: str) -> str | None:
        body: dict[str, Any] = {
            "name": f"dtf {run.get('name') or run['id']}",
            "automated": True,
            "state": state,
            "startedDate": _now(),
        }
        if self.job.details.get("build_id"):
            body["build"] = {"id": str(self.job.details["build_id"])}
        created = self._call("POST", "/test/runs", "test run", json=body).json()
        self.memory["test_run_id"] = created["id"]
        self.memory["test_run_url"] = created.get("webAccessUrl") or created.get("url")
        return self.memory["test_run_url"]

    def finish_test_run(self, finished: FinishedRun) -> str | None:
        if "test_run_id" not in self.memory:  # `dtf wait` in another process
            self._create_run(finished.run, state="InProgress")
        run_id = self.memory["test_run_id"]
        results = [_result(r) for r in finished.results if r["when"] != "teardown" or _failing(r)]
        for start in range(0, len(results), RESULTS_PER_REQUEST):
            chunk = results[start : start + RESULTS_PER_REQUEST]
            self._call("POST", f"/test/Runs/{run_id}/results", "test results", json=chunk)
        body = {"state": "Completed", "completedDate": _now(), "comment": finished.headline}
        self._call("PATCH", f"/test/runs/{run_id}", "test run", json=body)
        return self.memory.get("test_run_url")

    def upload_artifact(
        self, finished: FinishedRun, name: str, data: bytes, content_type: str
    ) -> str | None:
        run_id = self.memory.get("test_run_id")
        if run_id is None:
            raise NotOffered("attachments need the test run (integrations.azure.test_run)")
        body = {
            "stream": base64.b64encode(data).decode("ascii"),
            "fileName": name,
            "comment": f"dtf run {finished.run['id']}",
            "attachmentType": "GeneralAttachment",
        }
        response = self._call("POST", f"/test/Runs/{run_id}/attachments", "attachment", json=body)
        return response.json().get("url")

    def set_build_status(self, state: str, description: str) -> str | None:
        """A build tag (``dtf-passed``...): the build's own result is dtf's exit code."""
        build_id = self.job.details.get("build_id")
        if not build_id:
            raise NotOffered("no BUILD_BUILDID: not in an Azure Pipelines build")
        old = self.memory.get("build_tag")
        if old and old != TAGS[state]:
            self._call("DELETE", f"/build/builds/{build_id}/tags/{old}", "build tag")
        self._call("PUT", f"/build/builds/{build_id}/tags/{TAGS[state]}", "build tag")
        self.memory["build_tag"] = TAGS[state]
        return self.job.build_url

    def comment(self, finished: FinishedRun, body: str) -> str | None:
        repository = self.options.text(None, "BUILD_REPOSITORY_ID")
        if self.options.text(None, "BUILD_REPOSITORY_PROVIDER") != "TfsGit" or not repository:
            raise NotOffered("pull-request comments need an Azure Repos repository")
        body = cut(body, MAX_COMMENT)
        marker = body.splitlines()[0]
        threads = f"/git/repositories/{repository}/pullRequests/{self.job.pull_request}/threads"
        for thread in self._call("GET", threads, "pull request threads").json().get("value", []):
            for comment in thread.get("comments") or []:
                if (comment.get("content") or "").startswith(marker):
                    path = f"{threads}/{thread['id']}/comments/{comment['id']}"
                    self._call("PATCH", path, "pull request comment", json={"content": body})
                    return None
        thread = {"comments": [{"parentCommentId": 0, "content": body, "commentType": 1}],
                  "status": 1}  # fmt: skip
        self._call("POST", threads, "pull request comment", json=thread)
        return None


def _failing(result: Mapping[str, Any]) -> bool:
    return result["outcome"] in ("failed", "error", "crashed", "timed_out")


def _result(result: Mapping[str, Any]) -> dict[str, Any]:
    nodeid = result["nodeid"]
    storage = nodeid.split("::", 1)[0]
    entry: dict[str, Any] = {
        "testCaseTitle": nodeid.split("::")[-1]
        + (" (teardown)" if result["when"] == "teardown" else ""),
        "automatedTestName": nodeid.replace("/", ".").replace("::", "."),
        "automatedTestStorage": storage,
        "automatedTestType": "pytest",
        "outcome": OUTCOMES.get(result["outcome"], "Inconclusive"),
        "state": "Completed",
        "durationInMs": round((result.get("duration") or 0.0) * 1000),
    }
    if result.get("worker"):
        entry["computerName"] = result["worker"]
    if result.get("longrepr") and _failing(result):
        lines = result["longrepr"].strip().splitlines()
        entry["errorMessage"] = (lines[-1] if lines else "")[:MAX_ERROR]
        entry["stackTrace"] = result["longrepr"][-MAX_ERROR:]
    return entry


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


plugin = CiIntegration(Azure)
