"""``dtf plugins`` says, for each plugin, whether it is configured and what to set when not.

Each case runs the installed ``dtf plugins`` in an environment of its own (only
what the case sets, no CI's variables, no command server), so what it shows
comes from the settings given and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dtf.integrations.ci import azure, github, gitlab, jenkins

from dtf.ci_context import detect_ci

BUILT_IN = {
    "ci-github", "ci-gitlab", "ci-jenkins", "ci-azure", "slack", "teams", "email",
    "jira", "testrail", "prometheus", "pushgateway",
}  # fmt: skip

#: What each built-in plugin says to set when nothing is set.
NOTHING_SET = {
    "ci-github": "acts only in GitHub Actions (GITHUB_ACTIONS is not set)",
    "ci-gitlab": "acts only in GitLab CI (GITLAB_CI is not set)",
    "ci-jenkins": "acts only in Jenkins (JENKINS_URL is not set)",
    "ci-azure": "acts only in Azure Pipelines (TF_BUILD is not set)",
    "slack": "set DTF_SLACK_WEBHOOK_URL",
    "teams": "set DTF_TEAMS_WEBHOOK_URL",
    "email": "set DTF_SMTP_HOST and DTF_EMAIL_TO",
    "jira": "set DTF_JIRA_URL, DTF_JIRA_TOKEN and DTF_JIRA_PROJECT",
    "testrail": (
        "set DTF_TESTRAIL_URL, DTF_TESTRAIL_USER, DTF_TESTRAIL_API_KEY and DTF_TESTRAIL_RUN_ID"
    ),
    "prometheus": "set DTF_METRICS_PORT (in the workers' environment)",
    "pushgateway": "set DTF_PUSHGATEWAY_URL",
}

#: Every setting each plugin needs, as its hooks read them.
SETTINGS = {
    "slack": {"DTF_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/secret"},
    "teams": {"DTF_TEAMS_WEBHOOK_URL": "https://example.webhook.office.com/hook"},
    "email": {"DTF_SMTP_HOST": "localhost", "DTF_EMAIL_TO": "ml@example.org"},
    "jira": {
        "DTF_JIRA_URL": "https://acme.atlassian.net",
        "DTF_JIRA_TOKEN": "jira-secret",
        "DTF_JIRA_PROJECT": "MLINFRA",
    },
    "testrail": {
        "DTF_TESTRAIL_URL": "https://acme.testrail.io",
        "DTF_TESTRAIL_USER": "ci@example.org",
        "DTF_TESTRAIL_API_KEY": "testrail-secret",
        "DTF_TESTRAIL_RUN_ID": "1842",
    },
    "prometheus": {"DTF_METRICS_PORT": "9100"},
    "pushgateway": {"DTF_PUSHGATEWAY_URL": "http://pushgateway:9091"},
}

#: A CI job of each provider, with the token its provider needs.
CI_JOBS = {
    "ci-github": {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_SHA": "a" * 40,
        "GITHUB_TOKEN": "github-secret",
    },
    "ci-gitlab": {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": "https://gitlab.example/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_COMMIT_SHA": "b" * 40,
        "DTF_GITLAB_TOKEN": "gitlab-secret",
    },
    "ci-jenkins": {
        "JENKINS_URL": "https://jenkins.example/",
        "BUILD_URL": "https://jenkins.example/job/models/7/",
        "WORKSPACE": "/var/lib/jenkins/workspace/models",
    },
    "ci-azure": {
        "TF_BUILD": "True",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/",
        "SYSTEM_TEAMPROJECT": "models",
        "BUILD_BUILDID": "7",
        "SYSTEM_ACCESSTOKEN": "azure-secret",
    },
}


def dtf_plugins(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    """``dtf plugins ARGS`` in ``tmp_path``, its environment ``settings`` and no more."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DTF_COMMAND_SERVER": "0",
        **settings,
    }
    script = Path(sys.executable).parent / "dtf"
    command = [str(script)] if script.exists() else [sys.executable, "-P", "-m", "dtf"]
    ran = subprocess.run(
        [*command, "plugins", *args], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran


def listed(tmp_path: Path, **settings: str) -> dict[str, dict]:
    ran = dtf_plugins(tmp_path, "--json", **settings)
    return {plugin["name"]: plugin for plugin in json.loads(ran.stdout)}


def configured(tmp_path: Path, **settings: str) -> dict[str, tuple[bool | None, str]]:
    return {
        name: (plugin["configured"], plugin["configured_detail"])
        for name, plugin in listed(tmp_path, **settings).items()
    }


def test_with_no_settings_every_built_in_plugin_is_unconfigured_and_names_what_to_set(tmp_path):
    found = configured(tmp_path)

    assert found.keys() >= BUILT_IN
    assert {name: found[name] for name in BUILT_IN} == {
        name: (False, NOTHING_SET[name]) for name in BUILT_IN
    }
    for name in BUILT_IN:
        assert re.search(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", found[name][1]), name


def test_slack_and_jira_with_their_settings_are_configured_and_the_others_still_not(tmp_path):
    found = configured(tmp_path, **SETTINGS["slack"], **SETTINGS["jira"])

    assert found["slack"] == (True, "")
    assert found["jira"] == (True, "")
    assert found["teams"] == (False, "set DTF_TEAMS_WEBHOOK_URL")
    assert found["testrail"] == (False, NOTHING_SET["testrail"])


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_notifier_tracker_and_metrics_plugin_is_configured_by_its_settings(tmp_path, name):
    assert configured(tmp_path, **SETTINGS[name])[name] == (True, "")


def test_a_half_configured_plugin_says_which_setting_is_missing(tmp_path):
    found = configured(
        tmp_path,
        DTF_JIRA_URL="https://acme.atlassian.net",
        DTF_SMTP_HOST="localhost",
        DTF_TESTRAIL_URL="https://acme.testrail.io",
        DTF_TESTRAIL_USER="ci@example.org",
        DTF_TESTRAIL_API_KEY="testrail-secret",
        DTF_METRICS_PORT="none",
        DTF_PUSHGATEWAY_URL="http://pushgateway:9091",
        DTF_PUSHGATEWAY_GROUPING="team",
    )

    assert found["jira"][0] is False
    assert found["jira"][1].startswith("DTF_JIRA_URL is set but DTF_JIRA_TOKEN is not")
    assert found["email"] == (
        False,
        "DTF_SMTP_HOST is set but DTF_EMAIL_TO is not: name the recipients",
    )
    assert found["testrail"][0] is False
    assert "set DTF_TESTRAIL_RUN_ID" in found["testrail"][1]
    assert found["prometheus"] == (
        False,
        "DTF_METRICS_PORT: expected a TCP port 1..65535, got 'none'",
    )
    assert found["pushgateway"][0] is False
    assert found["pushgateway"][1].startswith("DTF_PUSHGATEWAY_GROUPING: bad entry 'team'")


def test_a_notifier_turned_off_by_notify_on_never_says_so(tmp_path):
    found = configured(
        tmp_path,
        **SETTINGS["slack"],
        **SETTINGS["teams"],
        DTF_NOTIFY_ON="never",
        DTF_TEAMS_NOTIFY_ON="failure",
    )

    assert found["slack"] == (False, "turned off by DTF_NOTIFY_ON=never")
    assert found["teams"] == (True, "")


@pytest.mark.parametrize("name", sorted(CI_JOBS))
def test_a_ci_provider_is_configured_only_in_its_own_ci_with_its_token(tmp_path, name):
    found = configured(tmp_path, **CI_JOBS[name])

    assert found[name] == (True, "")
    provider = CI_JOBS[name]
    ci = detect_ci(provider)
    assert ci is not None
    for other in CI_JOBS.keys() - {name}:
        assert found[other][0] is False
        assert found[other][1].endswith(f"(this is {ci.provider})"), found[other]


def test_in_its_ci_without_a_token_a_provider_names_the_token_to_set(tmp_path):
    def without_token(job: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in job.items() if not k.endswith(("_TOKEN", "ACCESSTOKEN"))}

    github_job = configured(tmp_path, **without_token(CI_JOBS["ci-github"]))
    gitlab_job = configured(tmp_path, **without_token(CI_JOBS["ci-gitlab"]))
    azure_job = configured(tmp_path, **without_token(CI_JOBS["ci-azure"]))

    assert github_job["ci-github"] == (False, "set GITHUB_TOKEN or DTF_GITHUB_TOKEN")
    assert gitlab_job["ci-gitlab"] == (
        False,
        "set DTF_GITLAB_TOKEN or GITLAB_TOKEN (a token with api scope)",
    )
    assert azure_job["ci-azure"] == (
        False,
        "set DTF_AZURE_TOKEN, or SYSTEM_ACCESSTOKEN to $(System.AccessToken)",
    )


def test_a_ci_provider_turned_off_says_by_what(tmp_path):
    job = CI_JOBS["ci-github"]

    assert configured(tmp_path, **job, DTF_GITHUB="0")["ci-github"] == (
        False,
        "turned off by DTF_GITHUB=0",
    )
    assert configured(tmp_path, **job, DTF_CI="none")["ci-github"] == (
        False,
        "DTF_CI=none turns CI detection off",
    )


@pytest.mark.parametrize("provider", [github.GitHub, gitlab.GitLab, jenkins.Jenkins, azure.Azure])
def test_each_ci_provider_names_the_variable_dtf_detects_its_ci_by(provider):
    ci = detect_ci({provider.ci_variable: "true"})

    assert ci is not None and ci.provider == provider.name


def test_a_plugin_without_dtf_configured_does_not_say_and_one_with_it_is_asked(tmp_path):
    (tmp_path / "third_party.py").write_text(
        textwrap.dedent(
            """
            from dtf.plugins import hookimpl

            dtf_plugin_kind = "monitoring"

            @hookimpl
            def dtf_run_finished(run, summary):
                pass

            class Needy:
                dtf_plugin_kind = "notification"

                def dtf_configured(self, env):
                    return True if env.get("NEEDY_URL") else "set NEEDY_URL"

            class Broken:
                dtf_plugin_kind = "notification"

                def dtf_configured(self, env):
                    raise KeyError("NEEDY_TOKEN")
            """
        )
    )
    plugins = "third_party,third_party:Needy,third_party:Broken"

    found = configured(tmp_path, DTF_PLUGINS=plugins, PYTHONPATH=str(tmp_path))
    needy_set = configured(
        tmp_path, DTF_PLUGINS=plugins, PYTHONPATH=str(tmp_path), NEEDY_URL="https://needy"
    )

    assert found["third_party"] == (None, "")
    assert found["third_party:Needy"] == (False, "set NEEDY_URL")
    assert found["third_party:Broken"] == (False, "dtf_configured raised KeyError: 'NEEDY_TOKEN'")
    assert needy_set["third_party:Needy"] == (True, "")


def test_the_table_has_a_configured_column(tmp_path):
    (tmp_path / "quiet_plugin.py").write_text('dtf_plugin_kind = "reporter"\n')

    table = dtf_plugins(
        tmp_path, DTF_PLUGINS="quiet_plugin", PYTHONPATH=str(tmp_path), **SETTINGS["slack"]
    ).stdout
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}

    assert "configured" in table.splitlines()[1]
    assert "│ yes " in rows["slack"]
    assert "│ no: set DTF_TEAMS_WEBHOOK_URL " in rows["teams"]
    assert "│ - " in rows["quiet_plugin"]
