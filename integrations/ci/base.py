"""The one interface every CI provider implements, and what it is given.

A provider is one module in ``integrations/ci/`` with a :class:`CiProvider`
subclass and a ``plugin = CiIntegration(ThatProvider)`` line, registered in the
``dtf.plugins`` entry-point group. :class:`dtf.integrations.ci.plugin.CiIntegration`
decides when each method is called; a provider only talks to its service.

Every method returns the URL where its result can be seen (or None), and
raises :class:`dtf.integrations.http.IntegrationError` (message free of secrets)
when the service refuses. :class:`NotOffered` says the service has no such
thing (Jenkins has no commit status API, GitHub no artefact upload API).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from dtf.integrations.http import http_session
from dtf.integrations.settings import Options

#: The build states dtf reports; each provider maps them onto its own words.
BUILD_STATES = ("pending", "success", "failure", "error")


class NotOffered(Exception):
    """The provider's service has no such feature; the message says what to do instead."""


@dataclass(frozen=True)
class CiJob:
    """Where a provider reports: the CI job's identity (from the run and the environment)."""

    provider: str
    commit: str | None
    branch: str | None
    pull_request: str | None
    build_url: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FinishedRun:
    """What a provider may report about a finished run (all plain data)."""

    run: dict[str, Any]
    summary: dict[str, Any]
    #: every result line: nodeid, outcome, duration, message, longrepr, worker
    results: list[dict[str, Any]]
    markdown: str
    junit_xml: str

    @property
    def state(self) -> str:
        """The build state: ``success``, ``failure`` (tests failed) or ``error``."""
        return {"passed": "success", "failed": "failure"}.get(self.summary.get("status"), "error")

    @property
    def headline(self) -> str:
        """One line for a status description: verdict and counts."""
        counts = self.summary.get("counts") or {}
        parts = [f"{n} {outcome}" for outcome, n in sorted(counts.items()) if n]
        status = self.summary.get("status", "?")
        return f"dtf {status}: {', '.join(parts) or 'no tests'}"


class CiProvider:
    """Talks to one CI service. Subclasses set ``name`` and override what it offers."""

    #: matches ``dtf.ci_context.CiContext.provider`` of the CI it runs in
    name: ClassVar[str] = ""
    #: keys a task file may set in ``integrations.<name>``
    task_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, job: CiJob, options: Options, session: requests.Session | None = None
    ) -> None:
        self.job = job
        self.options = options
        self.session = session or http_session()
        #: what one step leaves for a later one of the same run in this process
        #: (the test run's id from submission to finish)
        self.memory: dict[str, Any] = {}

    @classmethod
    def configure(
        cls, job: CiJob, options: Options, session: requests.Session | None = None
    ) -> CiProvider | None:
        """The provider for ``job``, or None when it is not set up (no token, not this CI)."""
        raise NotImplementedError

    @property
    def secrets(self) -> list[str]:
        """Everything to blank out of an error message."""
        return []

    def start_test_run(self, run: Mapping[str, Any]) -> str | None:
        """Open the provider's test run (or check run) for ``run``."""
        raise NotOffered(f"{self.name} has no test run to open")

    def finish_test_run(self, finished: FinishedRun) -> str | None:
        """Put the results into the provider's test run and close it."""
        raise NotOffered(f"{self.name} has no test run to fill")

    def comment(self, finished: FinishedRun, body: str) -> str | None:
        """Comment on the pull/merge request, replacing dtf's earlier comment."""
        raise NotOffered(f"{self.name} has no pull request comments")

    def upload_artifact(
        self, finished: FinishedRun, name: str, data: bytes, content_type: str
    ) -> str | None:
        """Store a file of ``finished`` with the build; returns where it can be downloaded."""
        raise NotOffered(f"{self.name} cannot take artefacts from dtf")

    def set_build_status(self, state: str, description: str) -> str | None:
        """Show the run's state on the commit or build (``state`` in :data:`BUILD_STATES`)."""
        raise NotOffered(f"{self.name} has no build status dtf can set")


def comment_marker(key: str) -> str:
    """The hidden line that finds dtf's earlier comment again (HTML comments do not render)."""
    return f"<!-- dtf-report:{key} -->"


def with_marker(key: str, body: str) -> str:
    return f"{comment_marker(key)}\n{body}"


def cut(text: str, limit: int, note: str = "\n\n… (cut: see the full report)") -> str:
    """``text`` within ``limit`` characters (services refuse longer bodies)."""
    return text if len(text) <= limit else text[: limit - len(note)] + note
