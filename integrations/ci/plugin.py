"""A CI provider as a dtf plugin: what it does when a run is submitted and when it finishes.

Both hooks run in the coordinator (the ``dtf`` CLI in the CI job), where the
CI's variables and tokens are. On ``dtf_run_submitted``: open the test run and
set the build status to pending. On ``dtf_run_finished``: fill and close the
test run, upload the artefacts, comment on the pull/merge request (updated in
place on re-runs), set the final build status. Each step is on its own: one
that fails is stored as the integration's outcome (``dtf status RUN`` shows
it) and the next step still runs; nothing here changes the run's result.

``dtf plugins`` asks :meth:`CiIntegration.dtf_configured`: set up when this
process runs in the provider's CI (its ``ci_variable``) and the provider's
``settings_for(job, options)`` finds what it needs (else it names what to set).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from dtf.integrations.ci.base import CiJob, CiProvider, FinishedRun, NotOffered, with_marker
from dtf.integrations.ci.report import finished_run
from dtf.integrations.http import IntegrationError, redact_secrets
from dtf.integrations.settings import ConfigError, Options

from dtf.ci_context import detect_ci
from dtf.config import load_settings
from dtf.plugins import hookimpl
from dtf.plugins.outcomes import record_outcome

logger = logging.getLogger("dtf.integrations.ci")

#: Artefacts uploaded at the end of a run (``DTF_CI_ARTIFACTS``): format -> file name, type.
ARTIFACTS = {
    "junit": ("dtf-junit.xml", "application/xml"),
    "json": ("dtf-report.json", "application/json"),
    "markdown": ("dtf-report.md", "text/markdown"),
    "html": ("dtf-report.html", "text/html"),
}
#: Keys every CI provider reads from the task file's ``integrations.<name>``.
COMMON_KEYS = ("enabled", "comment", "status", "test_run", "artifacts", "comment_key")


def job_for(run: Mapping[str, Any], env: Mapping[str, str] | None = None) -> CiJob | None:
    """The CI job: what ``dtf run`` stored on the run, details from this process's CI."""
    here = detect_ci(env)
    stored = run.get("ci") or {}
    provider = stored.get("provider") or (here.provider if here else None)
    if provider is None:
        return None
    same = here is not None and here.provider == provider
    return CiJob(
        provider=provider,
        commit=stored.get("commit") or (here.commit if same else None),
        branch=stored.get("branch") or (here.branch if same else None),
        pull_request=stored.get("pull_request") or (here.pull_request if same else None),
        build_url=stored.get("build_url") or (here.build_url if same else None),
        details=dict(here.details) if same else {},
    )


class CiIntegration:
    """The plugin object for one provider class (``plugin = CiIntegration(GitHub)``)."""

    dtf_plugin_kind = "integration"

    def __init__(self, provider: type[CiProvider], env: Mapping[str, str] | None = None) -> None:
        self.provider = provider
        self.dtf_plugin_name = f"ci-{provider.name}"
        self.dtf_settings_sections = (provider.name,)
        self.dtf_settings_keys = {provider.name: COMMON_KEYS + provider.task_keys}
        self.env = env
        self._memory: dict[str, dict[str, Any]] = {}

    def dtf_configured(self, env: Mapping[str, str]) -> bool | str:
        """True in the provider's CI with what the provider needs; else what to set."""
        provider = self.provider
        ci = getattr(provider, "ci_name", None) or f"{provider.name} CI"
        here = detect_ci(env)
        undetected = detect_ci({**env, "DTF_CI": ""}) if here is None else None
        if undetected is not None and undetected.provider == provider.name:
            return f"DTF_CI={env.get('DTF_CI')} turns CI detection off"
        if here is None or here.provider != provider.name:
            variable = getattr(provider, "ci_variable", None)
            why = f"this is {here.provider}" if here else f"{variable or 'its variable'} is not set"
            return f"acts only in {ci} ({why})"
        options = Options(provider.name, env=env)
        try:
            switch = self._env_name("")
            if not options.boolean("enabled", switch, True):
                return f"turned off by {switch}={options.env.get(switch)}"
            self._artifacts(options)
            job = job_for({}, env)
            settings_for = getattr(provider, "settings_for", None)
            if settings_for is not None:
                found = settings_for(job, options)
                return found if isinstance(found, str) else True
            configured = provider.configure(job, options) is not None
        except ConfigError as exc:
            return str(exc)
        return True if configured else f"{provider.name}: not set up (see its settings)"

    @hookimpl
    def dtf_run_submitted(self, run: dict[str, Any]) -> None:
        setup = self._setup(run)
        if setup is None:
            return
        provider, options = setup
        if options.boolean("test_run", self._env_name("TEST_RUN"), True):
            self._step(run, provider, "test run", lambda: provider.start_test_run(run), quiet=True)
        if options.boolean("status", self._env_name("STATUS"), True):
            self._step(
                run,
                provider,
                "status",
                lambda: provider.set_build_status("pending", f"dtf run {run['id']} is running"),
                quiet=True,
            )

    @hookimpl
    def dtf_run_finished(self, run: dict[str, Any], summary: dict[str, Any]) -> None:
        setup = self._setup(run)
        if setup is None:
            return
        provider, options = setup
        finished = finished_run(load_settings(self.env).database_url, run, summary)
        if options.boolean("test_run", self._env_name("TEST_RUN"), True):
            self._step(run, provider, "test run", lambda: provider.finish_test_run(finished))
        for fmt in self._artifacts(options):
            self._step(
                run, provider, f"artifact {fmt}", lambda f=fmt: self._upload(provider, f, finished)
            )
        if (
            options.boolean("comment", self._env_name("COMMENT"), True)
            and provider.job.pull_request
        ):
            key = options.text("comment_key", "DTF_CI_COMMENT_KEY") or run.get("name") or "dtf"
            body = with_marker(key, finished.markdown)
            self._step(run, provider, "comment", lambda: provider.comment(finished, body))
        if options.boolean("status", self._env_name("STATUS"), True):
            self._step(
                run,
                provider,
                "status",
                lambda: provider.set_build_status(finished.state, finished.headline),
            )

    def _setup(self, run: Mapping[str, Any]) -> tuple[CiProvider, Options] | None:
        job = job_for(run, self.env)
        if job is None or job.provider != self.provider.name:
            return None
        options = Options.for_run(self.provider.name, run, env=self._environ())
        options.check_keys(COMMON_KEYS + self.provider.task_keys)
        if not options.boolean("enabled", self._env_name(""), True):
            return None
        provider = self.provider.configure(job, options)
        if provider is None:
            logger.info("dtf: %s integration not configured; skipped", self.provider.name)
            return None
        provider.memory = self._memory.setdefault(str(run["id"]), {})
        return provider, options

    def _artifacts(self, options: Options) -> list[str]:
        names = options.text("artifacts", "DTF_CI_ARTIFACTS", "junit") or ""
        formats = [name.strip() for name in names.split(",") if name.strip()]
        unknown = [name for name in formats if name not in ARTIFACTS]
        if unknown:
            raise ConfigError(
                f"DTF_CI_ARTIFACTS: unknown format {unknown[0]!r} (known: {', '.join(ARTIFACTS)})"
            )
        return formats

    def _upload(self, provider: CiProvider, fmt: str, finished: FinishedRun) -> str | None:
        from dtf.integrations.ci.report import render

        name, content_type = ARTIFACTS[fmt]
        if fmt == "junit":
            text = finished.junit_xml
        elif fmt == "markdown":
            text = finished.markdown
        else:
            text = render(load_settings(self.env).database_url, finished.run["id"], fmt)
        return provider.upload_artifact(finished, name, text.encode("utf-8"), content_type)

    def _step(
        self,
        run: Mapping[str, Any],
        provider: CiProvider,
        what: str,
        action: Callable[[], str | None],
        *,
        quiet: bool = False,
    ) -> None:
        """Run one step; store its outcome (a quiet step only when it fails)."""
        name = f"{self.provider.name} {what}"
        try:
            url = action()
        except NotOffered as exc:
            logger.debug("dtf: %s: %s", name, exc)
            return
        except (IntegrationError, ConfigError) as exc:
            self._record(run, name, ok=False, error=str(exc), provider=provider)
            return
        except Exception as exc:  # a provider's bug must not hide the other steps
            error = f"{type(exc).__name__}: {exc}"
            self._record(run, name, ok=False, error=error, provider=provider)
            return
        if not quiet:
            self._record(run, name, ok=True, url=url, provider=provider)

    def _record(self, run, name: str, *, ok: bool, provider: CiProvider, **fields) -> None:
        if fields.get("error"):
            line = " ".join(str(fields["error"]).split())
            fields["error"] = redact_secrets(line, provider.secrets)[:300]
            logger.warning("dtf: %s failed: %s", name, fields["error"])
        record_outcome(
            run["id"],
            name,
            ok=ok,
            kind=self.dtf_plugin_kind,
            database_url=load_settings(self.env).database_url,
            **fields,
        )

    def _env_name(self, suffix: str) -> str:
        base = f"DTF_{self.provider.name.upper()}"
        return f"{base}_{suffix}" if suffix else base

    def _environ(self) -> Mapping[str, str]:
        return os.environ if self.env is None else self.env
