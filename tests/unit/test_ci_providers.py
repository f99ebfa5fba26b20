"""CI providers against local stand-ins of their APIs.

Each stand-in keeps state like the service (statuses, comments, test runs),
refuses a request without the documented authentication headers (401), and
records every request so the tests check method, path, query and body.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from dtf.integrations.ci import azure, github, gitlab, jenkins
from dtf.integrations.ci.base import comment_marker
from dtf.integrations.settings import ConfigError
from junitparser import JUnitXml

from dtf.db.models import Run, RunTask, TestItem, TestResult
from dtf.db.schema import upgrade
from dtf.db.session import session_scope
from dtf.plugins.outcomes import outcomes

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


# --- a stand-in service ------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


class Service:
    """Answers with ``route(call) -> (status, headers, body)``; records every call."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, call: Call) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError

    def _handler(self):
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                call = Call(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                service.calls.append(call)
                status, headers, body = service.route(call)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]


UNAUTHORIZED = (401, {}, {"message": "Bad credentials"})


# --- a stored run the providers report on ------------------------------------


@pytest.fixture
def database_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'dtf.sqlite'}"
    upgrade(url)
    return url


def store_run(database_url: str, run_id: str, *, failing: bool = True) -> dict[str, Any]:
    """A finished run with a passed, a failed (or passed) and a skipped test."""
    tests = [
        ("tests/test_a.py::test_ok", "passed", None),
        ("tests/test_a.py::test_bad", "failed" if failing else "passed",
         "def test_bad():\n>       assert 1 == 2\nE       assert 1 == 2" if failing else None),
        ("tests/test_b.py::test_later", "skipped", None),
    ]  # fmt: skip
    with session_scope(database_url) as session:
        session.add(
            Run(
                id=run_id, name="unit", status="failed" if failing else "passed", workdir="/w",
                spec={"tasks": [{"type": "test", "paths": ["tests"]}]}, created_at=T0,
                started_at=T0, finished_at=T0,
            )
        )  # fmt: skip
        task = RunTask(run_id=run_id, position=0, type="test", queue="cpu", workdir="/w",
                       timeout=60, status="done")  # fmt: skip
        session.add(task)
        session.flush()
        for nodeid, outcome, longrepr in tests:
            item = TestItem(run_id=run_id, task_id=task.id, nodeid=nodeid,
                            path=nodeid.split("::")[0], outcome=outcome, duration=0.25)  # fmt: skip
            session.add(item)
            session.flush()
            session.add(
                TestResult(run_id=run_id, item_id=item.id, nodeid=nodeid, outcome=outcome,
                           when="call", duration=0.25, longrepr=longrepr, worker="w1@host")
            )  # fmt: skip
    counts = {"passed": 1 if failing else 2, "skipped": 1, **({"failed": 1} if failing else {})}
    summary = {
        "run_id": run_id,
        "status": "failed" if failing else "passed",
        "exit_code": 1 if failing else 0,
        "total": 3,
        "finished": 3,
        "counts": counts,
        "failures": [
            {"nodeid": "tests/test_a.py::test_bad", "outcome": "failed",
             "message": "E       assert 1 == 2"}
        ] if failing else [],
        "broken": [],
    }  # fmt: skip
    return summary


def run_payload(run_id: str, **ci: Any) -> dict[str, Any]:
    return {
        "id": run_id,
        "name": "unit",
        "status": "running",
        "spec": {"tasks": [{"type": "test", "paths": ["tests"]}]},
        "ci": {
            "provider": None,
            "commit": "abc123",
            "branch": "feature",
            "pull_request": "7",
            "build_url": "https://ci.example/build/1",
            **ci,
        },
    }


def stored_outcomes(database_url: str, run_id: str) -> dict[str, dict]:
    with session_scope(database_url) as session:
        return {o["integration"]: o for o in outcomes(session, run_id)}


# --- GitHub -------------------------------------------------------------------

GITHUB_TOKEN = "ghs_secretTOKEN1234"


class FakeGitHub(Service):
    """Statuses, check runs and issue comments of repository octo/app (REST API v3)."""

    PAGE = 2  # comments per page, whatever per_page asks: the client must follow Link

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[dict] = []
        self.check_runs: dict[int, dict] = {}
        self.comments: list[dict] = [
            {"id": 1, "body": "LGTM", "user": {"login": "alice"}},
            {"id": 2, "body": "please add a test", "user": {"login": "bob"}},
        ]
        self.refuse_comments = False

    def route(self, call: Call):
        if (
            call.headers.get("authorization") != f"Bearer {GITHUB_TOKEN}"
            or call.headers.get("accept") != "application/vnd.github+json"
            or call.headers.get("x-github-api-version") != "2022-11-28"
        ):
            return UNAUTHORIZED
        path = call.path
        if call.method == "POST" and path == "/repos/octo/app/statuses/abc123":
            body = call.json()
            assert body["state"] in ("pending", "success", "failure", "error")
            assert len(body["description"]) <= 140
            self.statuses.append(body)
            return 201, {}, {"id": len(self.statuses), **body}
        if path == "/repos/octo/app/issues/7/comments" and call.method == "GET":
            page = int(call.query.get("page", ["1"])[0])
            chunk = self.comments[(page - 1) * self.PAGE : page * self.PAGE]
            headers = {}
            if page * self.PAGE < len(self.comments):
                headers["Link"] = (
                    f"<{self.url}/repos/octo/app/issues/7/comments?per_page=100&page={page + 1}>;"
                    ' rel="next"'
                )
            return 200, headers, chunk
        if path == "/repos/octo/app/issues/7/comments" and call.method == "POST":
            if self.refuse_comments:
                return 403, {}, {"message": "Resource not accessible by integration"}
            comment = {"id": 100 + len(self.comments), "body": call.json()["body"]}
            comment["html_url"] = (
                f"https://github.example/octo/app/pull/7#issuecomment-{comment['id']}"
            )
            self.comments.append(comment)
            return 201, {}, comment
        if path.startswith("/repos/octo/app/issues/comments/") and call.method == "PATCH":
            comment_id = int(path.rsplit("/", 1)[1])
            comment = next(c for c in self.comments if c["id"] == comment_id)
            comment["body"] = call.json()["body"]
            return 200, {}, {**comment, "html_url": f"https://github.example/c/{comment_id}"}
        if path == "/repos/octo/app/check-runs" and call.method == "POST":
            check = {"id": 900 + len(self.check_runs), **call.json()}
            check["html_url"] = f"https://github.example/octo/app/runs/{check['id']}"
            self.check_runs[check["id"]] = check
            return 201, {}, check
        if path.startswith("/repos/octo/app/check-runs/") and call.method == "PATCH":
            check = self.check_runs[int(path.rsplit("/", 1)[1])]
            check.update(call.json())
            return 200, {}, check
        return 404, {}, {"message": "Not Found"}


@pytest.fixture
def fake_github():
    service = FakeGitHub()
    yield service
    service.close()


def github_env(service: Service, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_API_URL": service.url,
        "DTF_DATABASE_URL": database_url,
        **extra,
    }


def test_github_sets_the_commit_status_and_comments_on_the_pull_request(fake_github, database_url):
    summary = store_run(database_url, "run1")
    plugin = github.CiIntegration(github.GitHub, env=github_env(fake_github, database_url))
    run = run_payload("run1", provider="github")

    plugin.dtf_run_submitted(run)
    plugin.dtf_run_finished(run, summary)

    assert [s["state"] for s in fake_github.statuses] == ["pending", "failure"]
    final = fake_github.statuses[-1]
    assert final["context"] == "dtf"
    assert final["target_url"] == "https://ci.example/build/1"
    assert final["description"].startswith("dtf failed: 1 failed, 1 passed, 1 skipped")
    ours = [c for c in fake_github.comments if c["body"].startswith(comment_marker("unit"))]
    assert len(ours) == 1
    assert "tests/test_a.py::test_bad" in ours[0]["body"]
    done = stored_outcomes(database_url, "run1")
    assert done["github comment"]["ok"] is True
    assert done["github comment"]["url"].endswith(f"#issuecomment-{ours[0]['id']}")
    assert done["github status"]["ok"] is True


def test_github_updates_its_comment_in_place_on_a_rerun(fake_github, database_url):
    env = github_env(fake_github, database_url)
    plugin = github.CiIntegration(github.GitHub, env=env)
    first = store_run(database_url, "run1")
    plugin.dtf_run_finished(run_payload("run1", provider="github"), first)
    again = store_run(database_url, "run2", failing=False)

    plugin.dtf_run_finished(run_payload("run2", provider="github"), again)

    ours = [c for c in fake_github.comments if c["body"].startswith(comment_marker("unit"))]
    assert len(ours) == 1  # found on page 2 of the comments and edited
    assert "run2" in ours[0]["body"] and "run1" not in ours[0]["body"]
    assert [c["body"] for c in fake_github.comments[:2]] == ["LGTM", "please add a test"]
    edits = [c for c in fake_github.writes() if c.method == "PATCH"]
    assert [c.path for c in edits] == [f"/repos/octo/app/issues/comments/{ours[0]['id']}"]
    assert [s["state"] for s in fake_github.statuses] == ["failure", "success"]


def test_github_check_run_opens_at_submission_and_completes_with_the_report(
    fake_github, database_url
):
    summary = store_run(database_url, "run1")
    env = github_env(fake_github, database_url, DTF_GITHUB_CHECKS="true")
    plugin = github.CiIntegration(github.GitHub, env=env)
    run = run_payload("run1", provider="github")

    plugin.dtf_run_submitted(run)
    plugin.dtf_run_finished(run, summary)

    (check,) = fake_github.check_runs.values()
    assert check["head_sha"] == "abc123"
    assert check["external_id"] == "run1"
    assert (check["status"], check["conclusion"]) == ("completed", "failure")
    assert "test_bad" in check["output"]["summary"]
    opened = [c for c in fake_github.writes() if c.path.endswith("/check-runs")]
    assert opened[0].json()["status"] == "in_progress"


def test_a_refused_comment_is_an_outcome_without_the_token_and_the_status_still_set(
    fake_github, database_url
):
    summary = store_run(database_url, "run1")
    fake_github.refuse_comments = True
    plugin = github.CiIntegration(github.GitHub, env=github_env(fake_github, database_url))

    plugin.dtf_run_finished(run_payload("run1", provider="github"), summary)

    failed = stored_outcomes(database_url, "run1")["github comment"]
    assert failed["ok"] is False
    assert failed["error"].startswith("GitHub pull request comment: HTTP 403 from POST")
    assert GITHUB_TOKEN not in json.dumps(stored_outcomes(database_url, "run1"))
    assert [s["state"] for s in fake_github.statuses] == ["failure"]


def test_a_provider_acts_only_in_its_own_ci_and_with_its_token(fake_github, database_url):
    summary = store_run(database_url, "run1")
    no_token = github_env(fake_github, database_url, GITHUB_TOKEN="")
    github.CiIntegration(github.GitHub, env=no_token).dtf_run_finished(
        run_payload("run1", provider="github"), summary
    )
    env = github_env(fake_github, database_url)
    github.CiIntegration(github.GitHub, env=env).dtf_run_finished(
        run_payload("run1", provider="gitlab"), summary
    )
    assert fake_github.calls == []


# --- GitLab -------------------------------------------------------------------

GITLAB_TOKEN = "glpat-secret987654"
JOB_TOKEN = "job-token-456789"


class FakeGitLab(Service):
    """Project 42's commit statuses, merge request 7's notes and generic packages (API v4)."""

    PAGE = 2

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[dict] = []
        self.notes: list[dict] = [
            {"id": 1, "body": "assigned to @alice", "system": True},
            {"id": 2, "body": "looks fine", "system": False},
            {"id": 3, "body": "nit: naming", "system": False},
        ]
        self.packages: dict[str, bytes] = {}

    def route(self, call: Call):
        path = call.path
        if path.startswith("/api/v4/projects/42/packages/generic/"):
            if call.headers.get("job-token") != JOB_TOKEN or call.method != "PUT":
                return UNAUTHORIZED
            self.packages[path] = call.body
            return 201, {}, {"message": "201 Created"}
        if call.headers.get("private-token") != GITLAB_TOKEN:
            return UNAUTHORIZED
        if call.method == "POST" and path == "/api/v4/projects/42/statuses/abc123":
            body = call.json()
            assert body["state"] in ("pending", "running", "success", "failed", "canceled")
            self.statuses.append(body)
            return 201, {}, {"id": len(self.statuses), "status": body["state"]}
        notes = "/api/v4/projects/42/merge_requests/7/notes"
        if path == notes and call.method == "GET":
            page = int(call.query["page"][0])
            chunk = self.notes[(page - 1) * self.PAGE : page * self.PAGE]
            more = page * self.PAGE < len(self.notes)
            return 200, {"X-Next-Page": str(page + 1) if more else ""}, chunk
        if path == notes and call.method == "POST":
            note = {"id": 50 + len(self.notes), "body": call.json()["body"], "system": False}
            self.notes.append(note)
            return 201, {}, note
        if path.startswith(notes + "/") and call.method == "PUT":
            note = next(n for n in self.notes if n["id"] == int(path.rsplit("/", 1)[1]))
            note["body"] = call.json()["body"]
            return 200, {}, note
        return 404, {}, {"message": "404 Not Found"}


@pytest.fixture
def fake_gitlab():
    service = FakeGitLab()
    yield service
    service.close()


def gitlab_env(service: Service, database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": f"{service.url}/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_PIPELINE_ID": "314",
        "CI_PIPELINE_URL": "https://gitlab.example/g/app/-/pipelines/314",
        "CI_PROJECT_URL": "https://gitlab.example/g/app",
        "CI_PROJECT_DIR": str(tmp_path),
        "DTF_GITLAB_TOKEN": GITLAB_TOKEN,
        "CI_JOB_TOKEN": JOB_TOKEN,
        "DTF_CI_ARTIFACTS": "junit,markdown",
        "DTF_DATABASE_URL": database_url,
    }


def test_gitlab_status_note_junit_and_artifacts(fake_gitlab, database_url, tmp_path):
    env = gitlab_env(fake_gitlab, database_url, tmp_path)
    plugin = gitlab.CiIntegration(gitlab.GitLab, env=env)
    summary = store_run(database_url, "run1")
    run = run_payload("run1", provider="gitlab")

    plugin.dtf_run_submitted(run)
    plugin.dtf_run_finished(run, summary)

    assert [s["state"] for s in fake_gitlab.statuses] == ["running", "failed"]
    assert fake_gitlab.statuses[-1] | {"description": None} == {
        "state": "failed",
        "name": "dtf",
        "description": None,
        "target_url": "https://ci.example/build/1",
        "ref": "feature",
        "pipeline_id": 314,
    }
    junit = JUnitXml.fromfile(str(tmp_path / "dtf-junit.xml"))
    assert sum(suite.tests for suite in junit) == 3
    uploaded = fake_gitlab.packages[
        "/api/v4/projects/42/packages/generic/dtf-reports/run1/dtf-junit.xml"
    ]
    assert uploaded == (tmp_path / "dtf-junit.xml").read_bytes()
    assert "/dtf-reports/run1/dtf-report.md" in "".join(fake_gitlab.packages)
    (ours,) = [n for n in fake_gitlab.notes if n["body"].startswith(comment_marker("unit"))]
    done = stored_outcomes(database_url, "run1")
    assert (
        done["gitlab comment"]["url"]
        == f"https://gitlab.example/g/app/-/merge_requests/7#note_{ours['id']}"
    )
    assert (
        done["gitlab test run"]["url"] == "https://gitlab.example/g/app/-/pipelines/314/test_report"
    )
    assert all(o["ok"] for o in done.values()), done


def test_gitlab_edits_its_note_on_a_rerun_and_leaves_the_others(
    fake_gitlab, database_url, tmp_path
):
    plugin = gitlab.CiIntegration(
        gitlab.GitLab, env=gitlab_env(fake_gitlab, database_url, tmp_path)
    )
    plugin.dtf_run_finished(run_payload("run1", provider="gitlab"), store_run(database_url, "run1"))
    plugin.dtf_run_finished(
        run_payload("run2", provider="gitlab"), store_run(database_url, "run2", failing=False)
    )

    ours = [n for n in fake_gitlab.notes if n["body"].startswith(comment_marker("unit"))]
    assert len(ours) == 1 and "run2" in ours[0]["body"] and "run1" not in ours[0]["body"]
    assert [n["body"] for n in fake_gitlab.notes[:3]] == [
        "assigned to @alice",
        "looks fine",
        "nit: naming",
    ]
    puts = [c for c in fake_gitlab.calls if c.method == "PUT" and "/notes/" in c.path]
    assert len(puts) == 1


# --- Jenkins ------------------------------------------------------------------

JENKINS_USER, JENKINS_TOKEN = "ci-bot", "11aa22bb33cc44dd55"


class FakeJenkins(Service):
    """A build's description behind basic auth and CSRF crumbs bound to a session cookie."""

    def __init__(self) -> None:
        super().__init__()
        self.description: str | None = None

    def route(self, call: Call):
        expected = base64.b64encode(f"{JENKINS_USER}:{JENKINS_TOKEN}".encode()).decode()
        if call.headers.get("authorization") != f"Basic {expected}":
            return UNAUTHORIZED
        if call.method == "GET" and call.path == "/crumbIssuer/api/json":
            crumb = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": "c0ffee",
                     "crumbRequestField": "Jenkins-Crumb"}  # fmt: skip
            return 200, {"Set-Cookie": "JSESSIONID.abc=s1; Path=/"}, crumb
        if call.method == "POST" and call.path == "/job/app/12/submitDescription":
            if call.headers.get("jenkins-crumb") != "c0ffee" or "JSESSIONID.abc=s1" not in (
                call.headers.get("cookie") or ""
            ):
                return 403, {}, b"No valid crumb was included in the request"
            assert call.headers["content-type"] == "application/x-www-form-urlencoded"
            self.description = call.form()["description"][0]
            return 302, {"Location": f"{self.url}/job/app/12/"}, b""
        if call.method == "GET" and call.path == "/job/app/12/":
            return 200, {"Content-Type": "text/html"}, b"<html>build 12</html>"
        return 404, {}, b"Not Found"


@pytest.fixture
def fake_jenkins():
    service = FakeJenkins()
    yield service
    service.close()


def test_jenkins_description_with_crumb_and_junit_in_the_workspace(
    fake_jenkins, database_url, tmp_path
):
    env = {
        "JENKINS_URL": f"{fake_jenkins.url}/",
        "BUILD_URL": f"{fake_jenkins.url}/job/app/12/",
        "WORKSPACE": str(tmp_path),
        "DTF_JENKINS_USER": JENKINS_USER,
        "DTF_JENKINS_TOKEN": JENKINS_TOKEN,
        "DTF_DATABASE_URL": database_url,
    }
    plugin = jenkins.CiIntegration(jenkins.Jenkins, env=env)
    summary = store_run(database_url, "run1")
    run = run_payload("run1", provider="jenkins", build_url=env["BUILD_URL"], pull_request=None)

    plugin.dtf_run_submitted(run)
    assert fake_jenkins.description == "dtf run run1 is running"
    plugin.dtf_run_finished(run, summary)

    assert fake_jenkins.description == "dtf failed: 1 failed, 1 passed, 1 skipped"
    junit = JUnitXml.fromfile(str(tmp_path / "dtf-results" / "dtf-junit.xml"))
    assert sum(suite.failures for suite in junit) == 1
    done = stored_outcomes(database_url, "run1")
    assert done["jenkins test run"]["url"] == f"{fake_jenkins.url}/job/app/12/testReport/"
    assert done["jenkins artifact junit"]["url"] == (
        f"{fake_jenkins.url}/job/app/12/artifact/dtf-results/dtf-junit.xml"
    )
    assert "jenkins comment" not in done  # no pull request: nothing to comment on
    assert all(o["ok"] for o in done.values()), done


# --- Azure DevOps -------------------------------------------------------------

AZURE_PAT = "azpat0123456789abcdef"


class FakeAzure(Service):
    """Test runs, results, attachments and build tags of project Fiber (REST API 7.1)."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[int, dict] = {}
        self.results: dict[int, list[dict]] = {}
        self.attachments: list[dict] = []
        self.tags: set[str] = set()

    def route(self, call: Call):
        expected = base64.b64encode(f":{AZURE_PAT}".encode()).decode()
        if call.headers.get("authorization") != f"Basic {expected}":
            return UNAUTHORIZED
        if call.query.get("api-version") != ["7.1"]:
            return 400, {}, {"message": "api-version is required"}
        base = "/org/Fiber/_apis"
        if call.method == "POST" and call.path == f"{base}/test/runs":
            run = {"id": 24 + len(self.runs), **call.json()}
            run["webAccessUrl"] = (
                f"https://dev.azure.example/org/Fiber/_TestManagement/Runs?runId={run['id']}"
            )
            self.runs[run["id"]] = run
            return 200, {}, run
        if call.path.startswith(f"{base}/test/Runs/") and call.path.endswith("/results"):
            run_id = int(call.path.split("/")[-2])
            self.results.setdefault(run_id, []).extend(call.json())
            return 200, {}, {"count": len(call.json()), "value": call.json()}
        if call.method == "PATCH" and call.path.startswith(f"{base}/test/runs/"):
            run = self.runs[int(call.path.rsplit("/", 1)[1])]
            run.update(call.json())
            return 200, {}, run
        if call.path.endswith("/attachments") and call.method == "POST":
            self.attachments.append(call.json())
            number = len(self.attachments)
            return 200, {}, {"id": number, "url": f"https://dev.azure.example/attachments/{number}"}
        if call.path.startswith(f"{base}/build/builds/99/tags/"):
            tag = call.path.rsplit("/", 1)[1]
            (self.tags.add if call.method == "PUT" else self.tags.discard)(tag)
            return 200, {}, {"count": len(self.tags), "value": sorted(self.tags)}
        return 404, {}, {"message": "not found"}


@pytest.fixture
def fake_azure():
    service = FakeAzure()
    yield service
    service.close()


def test_azure_test_run_is_created_filled_and_completed(fake_azure, database_url):
    env = {
        "TF_BUILD": "True",
        "SYSTEM_COLLECTIONURI": f"{fake_azure.url}/org/",
        "SYSTEM_TEAMPROJECT": "Fiber",
        "BUILD_BUILDID": "99",
        "DTF_AZURE_TOKEN": AZURE_PAT,
        "DTF_DATABASE_URL": database_url,
    }
    plugin = azure.CiIntegration(azure.Azure, env=env)
    summary = store_run(database_url, "run1")
    run = run_payload("run1", provider="azure", pull_request=None)

    plugin.dtf_run_submitted(run)
    assert fake_azure.tags == {"dtf-running"}
    plugin.dtf_run_finished(run, summary)

    (test_run,) = fake_azure.runs.values()
    assert test_run["automated"] is True
    assert test_run["build"] == {"id": "99"}
    assert test_run["state"] == "Completed"
    by_name = {r["automatedTestName"]: r for r in fake_azure.results[test_run["id"]]}
    assert {name: r["outcome"] for name, r in by_name.items()} == {
        "tests.test_a.py.test_ok": "Passed",
        "tests.test_a.py.test_bad": "Failed",
        "tests.test_b.py.test_later": "NotExecuted",
    }
    bad = by_name["tests.test_a.py.test_bad"]
    assert (bad["errorMessage"], bad["durationInMs"], bad["computerName"]) == (
        "E       assert 1 == 2",
        250,
        "w1@host",
    )
    (attachment,) = fake_azure.attachments
    assert attachment["fileName"] == "dtf-junit.xml"
    assert b"<testsuite" in base64.b64decode(attachment["stream"])
    assert fake_azure.tags == {"dtf-failed"}
    done = stored_outcomes(database_url, "run1")
    assert done["azure test run"]["url"].endswith(f"runId={test_run['id']}")
    assert done["azure artifact junit"]["url"] == "https://dev.azure.example/attachments/1"
    assert all(o["ok"] for o in done.values()), done


def test_the_task_file_turns_the_comment_off_and_a_misspelt_key_is_an_error(
    fake_github, database_url
):
    summary = store_run(database_url, "run1")
    plugin = github.CiIntegration(github.GitHub, env=github_env(fake_github, database_url))
    run = run_payload("run1", provider="github")
    run["spec"]["integrations"] = {"github": {"comment": False, "status_context": "gpu-tests"}}

    plugin.dtf_run_finished(run, summary)

    assert [s["context"] for s in fake_github.statuses] == ["gpu-tests"]
    assert not [c for c in fake_github.writes() if "/comments" in c.path]
    run["spec"]["integrations"] = {"github": {"coment": False}}
    with pytest.raises(ConfigError, match=r"integrations\.github\.coment: unknown setting"):
        plugin.dtf_run_finished(run, summary)
