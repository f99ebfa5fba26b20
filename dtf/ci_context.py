"""Which CI job is running dtf, read from the environment variables each CI sets.

``dtf run``/``dtf submit`` store the result on the run (commit, branch, pull
request, build URL); CI integrations (``integrations/ci/``) use it to know
where to report.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_PULL_REF = re.compile(r"^refs/(?:pull|merge-requests)/(\d+)/")


@dataclass(frozen=True)
class CiContext:
    """The CI job a run came from; ``details`` holds provider-specific ids (never secrets)."""

    provider: str  # github | gitlab | jenkins | azure | circleci | buildkite
    commit: str | None = None
    branch: str | None = None
    pull_request: str | None = None
    build_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def apply_to(self, run) -> None:
        """Set the ``ci_*`` columns of a ``runs`` row."""
        run.ci_provider = self.provider
        run.ci_commit = (self.commit or None) and self.commit[:64]
        run.ci_branch = self.branch
        run.ci_pull_request = self.pull_request
        run.ci_build_url = self.build_url

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "commit": self.commit,
            "branch": self.branch,
            "pull_request": self.pull_request,
            "build_url": self.build_url,
        }


def detect_ci(env: Mapping[str, str] | None = None) -> CiContext | None:
    """The CI job described by ``env`` (default: this process's), None outside CI.

    ``DTF_CI=none`` turns detection off (e.g. a local ``act`` run).
    """
    env = os.environ if env is None else env
    if (env.get("DTF_CI") or "").lower() in ("none", "off", "0", "false"):
        return None
    for marker, detect in _DETECTORS:
        if _truthy(env.get(marker)):
            return detect(env)
    return None


def _truthy(value: str | None) -> bool:
    return bool(value) and value.strip().lower() not in ("false", "0", "no")


def _github(env: Mapping[str, str]) -> CiContext:
    # Docs: "Variables reference" (GITHUB_SHA, GITHUB_REF, GITHUB_HEAD_REF, GITHUB_RUN_ID...)
    event = _github_event(env.get("GITHUB_EVENT_PATH"))
    pull = event.get("pull_request") or {}
    number = pull.get("number") or _pull_number(env.get("GITHUB_REF"))
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    repository = env.get("GITHUB_REPOSITORY")
    build_url = None
    if repository and env.get("GITHUB_RUN_ID"):
        build_url = f"{server}/{repository}/actions/runs/{env['GITHUB_RUN_ID']}"
        if env.get("GITHUB_RUN_ATTEMPT") not in (None, "", "1"):
            build_url += f"/attempts/{env['GITHUB_RUN_ATTEMPT']}"
    return CiContext(
        provider="github",
        # On a pull request GITHUB_SHA is the merge commit GitHub made; statuses
        # and checks belong on the head commit the PR shows.
        commit=(pull.get("head") or {}).get("sha") or env.get("GITHUB_SHA"),
        branch=env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME"),
        pull_request=str(number) if number else None,
        build_url=build_url,
        details={
            "repository": repository,
            "api_url": env.get("GITHUB_API_URL") or "https://api.github.com",
            "server_url": server,
            "run_id": env.get("GITHUB_RUN_ID"),
            "workflow": env.get("GITHUB_WORKFLOW"),
            "job": env.get("GITHUB_JOB"),
        },
    )


def _github_event(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _gitlab(env: Mapping[str, str]) -> CiContext:
    # Docs: "Predefined CI/CD variables reference"
    return CiContext(
        provider="gitlab",
        commit=env.get("CI_COMMIT_SHA"),
        branch=env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or env.get("CI_COMMIT_REF_NAME"),
        pull_request=env.get("CI_MERGE_REQUEST_IID") or None,
        build_url=env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL"),
        details={
            "api_url": env.get("CI_API_V4_URL"),
            "project_id": env.get("CI_PROJECT_ID"),
            "pipeline_id": env.get("CI_PIPELINE_ID"),
            "pipeline_url": env.get("CI_PIPELINE_URL"),
            "project_url": env.get("CI_MERGE_REQUEST_PROJECT_URL") or env.get("CI_PROJECT_URL"),
            "project_dir": env.get("CI_PROJECT_DIR"),
            "job_name": env.get("CI_JOB_NAME"),
        },
    )


def _jenkins(env: Mapping[str, str]) -> CiContext:
    # Jenkins core sets JENKINS_URL, BUILD_URL, WORKSPACE; the Git plugin GIT_COMMIT and
    # GIT_BRANCH; multibranch pipelines BRANCH_NAME and CHANGE_ID for pull requests.
    branch = env.get("CHANGE_BRANCH") or env.get("BRANCH_NAME") or env.get("GIT_BRANCH")
    if branch and branch.startswith("origin/"):
        branch = branch[len("origin/") :]
    return CiContext(
        provider="jenkins",
        commit=env.get("GIT_COMMIT"),
        branch=branch,
        pull_request=env.get("CHANGE_ID") or None,
        build_url=env.get("BUILD_URL"),
        details={
            "jenkins_url": env.get("JENKINS_URL"),
            "job_name": env.get("JOB_NAME"),
            "build_number": env.get("BUILD_NUMBER"),
            "workspace": env.get("WORKSPACE"),
        },
    )


def _azure(env: Mapping[str, str]) -> CiContext:
    # Docs: "Use predefined variables" (Build.*, System.*), exported upper-cased with "_".
    collection = env.get("SYSTEM_COLLECTIONURI") or env.get("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI")
    project = env.get("SYSTEM_TEAMPROJECT")
    build_id = env.get("BUILD_BUILDID")
    build_url = None
    if collection and project and build_id:
        build_url = f"{collection.rstrip('/')}/{project}/_build/results?buildId={build_id}"
    pull = env.get("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER") or env.get(
        "SYSTEM_PULLREQUEST_PULLREQUESTID"
    )
    branch = env.get("SYSTEM_PULLREQUEST_SOURCEBRANCH") or env.get("BUILD_SOURCEBRANCH") or ""
    return CiContext(
        provider="azure",
        commit=env.get("SYSTEM_PULLREQUEST_SOURCECOMMITID") or env.get("BUILD_SOURCEVERSION"),
        branch=re.sub(r"^refs/heads/", "", branch) or None,
        pull_request=pull or _pull_number(env.get("BUILD_SOURCEBRANCH")),
        build_url=build_url,
        details={
            "collection_uri": collection,
            "project": project,
            "build_id": build_id,
            "build_uri": env.get("BUILD_BUILDURI"),
            "job_name": env.get("SYSTEM_JOBDISPLAYNAME"),
        },
    )


def _circleci(env: Mapping[str, str]) -> CiContext:
    pull_url = env.get("CIRCLE_PULL_REQUEST") or ""
    return CiContext(
        provider="circleci",
        commit=env.get("CIRCLE_SHA1"),
        branch=env.get("CIRCLE_BRANCH"),
        pull_request=pull_url.rsplit("/", 1)[-1] or None,
        build_url=env.get("CIRCLE_BUILD_URL"),
    )


def _buildkite(env: Mapping[str, str]) -> CiContext:
    pull = env.get("BUILDKITE_PULL_REQUEST")
    return CiContext(
        provider="buildkite",
        commit=env.get("BUILDKITE_COMMIT"),
        branch=env.get("BUILDKITE_BRANCH"),
        pull_request=pull if pull and pull != "false" else None,
        build_url=env.get("BUILDKITE_BUILD_URL"),
    )


def _pull_number(ref: str | None) -> str | None:
    match = _PULL_REF.match(ref or "")
    return match.group(1) if match else None


#: (the variable a CI always sets, its reader); the first one set wins.
_DETECTORS: list[tuple[str, Callable[[Mapping[str, str]], CiContext]]] = [
    ("GITHUB_ACTIONS", _github),
    ("GITLAB_CI", _gitlab),
    ("TF_BUILD", _azure),
    ("JENKINS_URL", _jenkins),
    ("CIRCLECI", _circleci),
    ("BUILDKITE", _buildkite),
]
