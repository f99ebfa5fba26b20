"""The environment of what a batch or a command task starts: the worker's, less dtf's own.

A test (and a command task's command) sees the worker's environment without dtf's
settings and secrets: every ``DTF_*`` variable (the database and broker URLs, the
integrations' tokens and webhook URLs) and the CI tokens dtf's integrations read as
fallbacks (:data:`CI_TOKENS`), so that a test that prints its environment puts none of
them into the reports or the results database, and no test holds the worker's
credentials to that database. ``DTF_TEST_ENV_PASS=NAME1,NAME2`` in the worker's
environment lets the named variables through; what a task sets explicitly (a command
task's ``env``, the runner's ``env``) always reaches it.

This keeps secrets out of what a test sees by accident; it is no sandbox: a test runs
as the worker's user, which may read the worker's ``/proc/PID/environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Names the worker lets through to tests and commands, comma-separated.
PASS_ENV = "DTF_TEST_ENV_PASS"
#: Every variable with this prefix is dtf's: withheld.
DTF_PREFIX = "DTF_"
#: Secrets dtf's CI integrations read outside ``DTF_*`` (fallbacks for their tokens).
CI_TOKENS = frozenset({"GITHUB_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN", "SYSTEM_ACCESSTOKEN"})
#: Set by the metrics integration for the worker's own processes (DTF_METRICS_DIR).
_METRICS_DIRS = ("PROMETHEUS_MULTIPROC_DIR", "DTF_METRICS_DIR")


def passed_names(environ: Mapping[str, str]) -> frozenset[str]:
    """The names ``DTF_TEST_ENV_PASS`` lets through."""
    return frozenset(n.strip() for n in environ.get(PASS_ENV, "").split(",") if n.strip())


def is_withheld(name: str, environ: Mapping[str, str]) -> bool:
    """True when ``name`` is dtf's setting or secret (``DTF_TEST_ENV_PASS`` aside)."""
    if name.startswith(DTF_PREFIX) or name in CI_TOKENS:
        return True
    multiproc, metrics = _METRICS_DIRS
    # The worker's metrics folder: a test's prometheus_client must not write into it.
    return (
        name == multiproc
        and bool(environ.get(metrics))
        and (environ.get(name) == environ.get(metrics))
    )


def child_env(
    environ: Mapping[str, str] | None = None, explicit: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``environ`` (default: this process's) less what :func:`is_withheld` names, unless
    ``DTF_TEST_ENV_PASS`` lets it through; then ``explicit`` over it."""
    environ = os.environ if environ is None else environ
    passed = passed_names(environ)
    kept = {
        name: value
        for name, value in environ.items()
        if name in passed or not is_withheld(name, environ)
    }
    return {**kept, **(explicit or {})}
