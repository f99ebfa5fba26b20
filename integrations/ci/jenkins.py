"""Jenkins: the build description, and report files where the job picks them up.

Settings (environment; a task file's ``dtf.integrations.jenkins`` may set the
non-secret ones):

- ``DTF_JENKINS_USER`` and ``DTF_JENKINS_TOKEN``: a user and its API token (HTTP
  basic auth). Without them the description is not set; the files still are.
- ``JENKINS_URL``, ``BUILD_URL``, ``WORKSPACE``: set by Jenkins.
- ``DTF_JENKINS_REPORTS`` / ``reports``: the folder, relative to the workspace,
  the JUnit file and artefacts go to (default ``dtf-results``). The job reads
  them with ``junit 'dtf-results/*.xml'`` and ``archiveArtifacts 'dtf-results/**'``.

The description is posted to ``{BUILD_URL}submitDescription`` (form field
``description``) with the CSRF crumb from ``{JENKINS_URL}crumbIssuer/api/json``
in the header it names (``Jenkins-Crumb``); a Jenkins without CSRF protection
has no crumb issuer (404) and takes the post without one. Jenkins has no status
dtf could set: the build's result is what ``dtf run`` exits with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dtf.integrations.calls import call
from dtf.integrations.ci.base import CiProvider, FinishedRun, NotOffered, cut
from dtf.integrations.ci.plugin import CiIntegration
from dtf.integrations.http import IntegrationError

#: Longer descriptions clutter the build history; Jenkins itself has no limit.
MAX_DESCRIPTION = 1000
JUNIT_FILE = "dtf-junit.xml"


class Jenkins(CiProvider):
    name = "jenkins"
    task_keys = ("reports",)
    #: the CI it reports from, and the variable that CI sets (dtf/ci_context.py)
    ci_name = "Jenkins"
    ci_variable = "JENKINS_URL"

    def __init__(self, job, options, session=None, *, user, token, workspace):
        super().__init__(job, options, session)
        self.user = user
        self.token = token
        self.workspace = Path(workspace)
        self.reports = options.text("reports", "DTF_JENKINS_REPORTS", "dtf-results")
        if user and token:
            self.session.auth = (user, token)

    @classmethod
    def configure(cls, job, options, session=None) -> Jenkins | None:
        found = cls.settings_for(job, options)
        return None if isinstance(found, str) else cls(job, options, session, **found)

    @classmethod
    def settings_for(cls, job, options) -> dict[str, Any] | str:
        """The provider's settings for ``job``, or what to set (``dtf plugins`` shows it).
        Without ``DTF_JENKINS_USER``/``_TOKEN`` it still writes the report files."""
        workspace = job.details.get("workspace") or options.text(None, "WORKSPACE")
        if not workspace and not job.build_url:
            return "set WORKSPACE or BUILD_URL"
        user = options.text(None, "DTF_JENKINS_USER")
        token = options.secret("DTF_JENKINS_TOKEN")
        return {"user": user, "token": token, "workspace": workspace or "."}

    @property
    def secrets(self) -> list[str]:
        return [self.token or ""]

    @property
    def folder(self) -> Path:
        return self.workspace / self.reports

    def _file_url(self, name: str) -> str | None:
        if not self.job.build_url:
            return None
        return f"{_slash(self.job.build_url)}artifact/{self.reports.strip('/')}/{name}"

    def finish_test_run(self, finished: FinishedRun) -> str | None:
        """Write the JUnit file for the job's ``junit`` step; its page is the test report."""
        self._write(JUNIT_FILE, finished.junit_xml.encode("utf-8"))
        return f"{_slash(self.job.build_url)}testReport/" if self.job.build_url else None

    def upload_artifact(
        self, finished: FinishedRun, name: str, data: bytes, content_type: str
    ) -> str | None:
        """Write the file for the job's ``archiveArtifacts`` step; the URL it will have."""
        self._write(name, data)
        return self._file_url(name)

    def set_build_status(self, state: str, description: str) -> str | None:
        """The build's description says how the run is doing (Jenkins has no status to set)."""
        if not (self.user and self.token and self.job.build_url):
            raise NotOffered("no DTF_JENKINS_USER/DTF_JENKINS_TOKEN: build description not set")
        headers = self._crumb()
        call(
            self.session, "POST", f"{_slash(self.job.build_url)}submitDescription",
            what="Jenkins build description", secrets=self.secrets, headers=headers,
            data={"description": cut(description, MAX_DESCRIPTION, "…")},
        )  # fmt: skip
        return self.job.build_url

    def _crumb(self) -> dict[str, str]:
        jenkins = self.job.details.get("jenkins_url") or _root_of(self.job.build_url)
        url = f"{_slash(jenkins)}crumbIssuer/api/json"
        try:
            response = call(self.session, "GET", url, what="Jenkins crumb", secrets=self.secrets)
        except IntegrationError as exc:
            if "HTTP 404" in str(exc):  # CSRF protection is off: no crumb needed
                return {}
            raise
        crumb = response.json()
        return {crumb["crumbRequestField"]: crumb["crumb"]}

    def _write(self, name: str, data: bytes) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / name).write_bytes(data)
        except OSError as exc:
            raise IntegrationError(f"Jenkins report {self.folder / name}: {exc.strerror}") from None


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _root_of(build_url: str | None) -> str:
    if not build_url or "/job/" not in build_url:
        raise IntegrationError("Jenkins: JENKINS_URL is not set")
    return build_url.split("/job/", 1)[0]


plugin = CiIntegration(Jenkins)
