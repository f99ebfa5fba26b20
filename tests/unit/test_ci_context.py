"""Which CI runs dtf, from the variables each CI sets, and what a run stores of it."""

from __future__ import annotations

import json

import pytest

from dtf.ci_context import detect_ci


def test_outside_ci_there_is_no_context():
    assert detect_ci({"HOME": "/root", "CI": "true"}) is None


def test_detection_can_be_turned_off():
    assert detect_ci({"GITHUB_ACTIONS": "true", "DTF_CI": "none"}) is None


def test_github_actions_push():
    ci = detect_ci(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": "a1b2c3",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "octo/app",
            "GITHUB_RUN_ID": "1234",
            "GITHUB_RUN_ATTEMPT": "2",
        }
    )
    assert ci.to_dict() == {
        "provider": "github",
        "commit": "a1b2c3",
        "branch": "main",
        "pull_request": None,
        "build_url": "https://github.com/octo/app/actions/runs/1234/attempts/2",
    }
    assert ci.details["repository"] == "octo/app"
    assert ci.details["api_url"] == "https://api.github.com"


def test_github_pull_request_reports_on_the_head_commit_not_the_merge_commit(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 17, "head": {"sha": "head99"}}}))
    ci = detect_ci(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": "merge00",
            "GITHUB_REF": "refs/pull/17/merge",
            "GITHUB_HEAD_REF": "feature/x",
            "GITHUB_EVENT_PATH": str(event),
        }
    )
    assert (ci.commit, ci.branch, ci.pull_request) == ("head99", "feature/x", "17")


def test_github_pull_request_number_from_the_ref_when_the_event_is_unreadable(tmp_path):
    ci = detect_ci(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": "merge00",
            "GITHUB_REF": "refs/pull/17/merge",
            "GITHUB_EVENT_PATH": str(tmp_path / "missing.json"),
        }
    )
    assert (ci.commit, ci.pull_request) == ("merge00", "17")


def test_gitlab_merge_request_pipeline():
    ci = detect_ci(
        {
            "GITLAB_CI": "true",
            "CI_COMMIT_SHA": "c0ffee",
            "CI_COMMIT_REF_NAME": "refs/merge-requests/5/head",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "fix-it",
            "CI_MERGE_REQUEST_IID": "5",
            "CI_JOB_URL": "https://gitlab.example/g/app/-/jobs/77",
            "CI_API_V4_URL": "https://gitlab.example/api/v4",
            "CI_PROJECT_ID": "42",
        }
    )
    assert ci.to_dict() == {
        "provider": "gitlab",
        "commit": "c0ffee",
        "branch": "fix-it",
        "pull_request": "5",
        "build_url": "https://gitlab.example/g/app/-/jobs/77",
    }
    assert (ci.details["api_url"], ci.details["project_id"]) == (
        "https://gitlab.example/api/v4",
        "42",
    )


@pytest.mark.parametrize(
    ("env", "branch", "pull_request"),
    [
        ({"GIT_BRANCH": "origin/main"}, "main", None),
        ({"BRANCH_NAME": "PR-9", "CHANGE_ID": "9", "CHANGE_BRANCH": "feature"}, "feature", "9"),
    ],
)
def test_jenkins_freestyle_and_multibranch(env, branch, pull_request):
    ci = detect_ci(
        {
            "JENKINS_URL": "https://jenkins.example/",
            "BUILD_URL": "https://jenkins.example/job/app/12/",
            "GIT_COMMIT": "deadbeef",
            "WORKSPACE": "/var/lib/jenkins/ws",
            **env,
        }
    )
    assert (ci.provider, ci.commit, ci.branch, ci.pull_request, ci.build_url) == (
        "jenkins",
        "deadbeef",
        branch,
        pull_request,
        "https://jenkins.example/job/app/12/",
    )


def test_azure_pipelines_pull_request():
    ci = detect_ci(
        {
            "TF_BUILD": "True",
            "BUILD_SOURCEVERSION": "merge11",
            "BUILD_SOURCEBRANCH": "refs/pull/3/merge",
            "SYSTEM_PULLREQUEST_PULLREQUESTID": "3",
            "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/topic",
            "SYSTEM_PULLREQUEST_SOURCECOMMITID": "head22",
            "SYSTEM_COLLECTIONURI": "https://dev.azure.com/org/",
            "SYSTEM_TEAMPROJECT": "Fiber",
            "BUILD_BUILDID": "99",
        }
    )
    assert ci.to_dict() == {
        "provider": "azure",
        "commit": "head22",
        "branch": "topic",
        "pull_request": "3",
        "build_url": "https://dev.azure.com/org/Fiber/_build/results?buildId=99",
    }


def test_a_run_stores_the_context_in_its_columns():
    from dtf.db.models import Run

    run = Run(id="r", workdir="/w")
    detect_ci({"GITLAB_CI": "true", "CI_COMMIT_SHA": "c0ffee", "CI_COMMIT_REF_NAME": "main",
               "CI_JOB_URL": "https://g/j/1"}).apply_to(run)  # fmt: skip
    assert (run.ci_provider, run.ci_commit, run.ci_branch, run.ci_pull_request) == (
        "gitlab",
        "c0ffee",
        "main",
        None,
    )
    assert run.ci_build_url == "https://g/j/1"
