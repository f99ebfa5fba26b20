"""Slack, Microsoft Teams and email as dtf plugins.

Each sends a message when a run finishes (``DTF_NOTIFY_ON``: always, failure or
never; per channel ``DTF_SLACK_NOTIFY_ON`` etc.) and a critical one when a
recovery fails on a worker. A channel without its settings does nothing
(``dtf plugins`` says which are set up, and what the others need). A
message that cannot be sent raises, which the plugin manager records as the
integration's outcome of the run; the run's result never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from dtf.integrations.notify.email import SmtpSettings, build_email, send_email, smtp_settings
from dtf.integrations.notify.notice import (
    NOTIFY_ON,
    Notice,
    recovery_notice,
    run_notice,
    should_notify,
)
from dtf.integrations.notify.slack import SlackWebhook
from dtf.integrations.notify.teams import TeamsWebhook
from dtf.integrations.settings import ConfigError, Options

from dtf.plugins import hookimpl
from dtf.plugins.outcomes import record_outcome


class Channel(Protocol):
    def send(self, notice: Notice) -> None: ...


class _Notifier:
    """What every channel shares: when to send, what to send, recording the outcome."""

    dtf_plugin_kind = "notification"
    dtf_plugin_name = ""
    #: keys a task file may set in ``integrations.<name>``
    task_keys: tuple[str, ...] = ("notify_on", "max_failures")
    #: what ``dtf plugins`` says to set when :meth:`channel` finds no settings
    needs = ""

    @property
    def dtf_settings_sections(self) -> tuple[str, ...]:
        return (self.dtf_plugin_name, "notify")

    @property
    def dtf_settings_keys(self) -> dict[str, tuple[str, ...]]:
        return {self.dtf_plugin_name: self.task_keys, "notify": ("on",)}

    def channel(self, options: Options) -> Channel | None:
        """The configured channel, or None when this notifier is not set up."""
        raise NotImplementedError

    def dtf_configured(self, env: Mapping[str, str]) -> bool | str:
        """True when the environment sets this channel up; else what to set."""
        options = Options(self.dtf_plugin_name, env=env)
        try:
            if self.channel(options) is None:
                return self.needs
            if self._notify_on(options, None) == "never":
                own = self._notify_on_env
                return f"turned off by {own if options.text(None, own) else 'DTF_NOTIFY_ON'}=never"
        except ConfigError as exc:
            return str(exc)
        return True

    def _options(self, run: dict[str, Any] | None) -> Options:
        options = Options.for_run(self.dtf_plugin_name, run)
        options.check_keys(self.task_keys)
        return options

    def _notify_on(self, options: Options, run: dict[str, Any] | None) -> str:
        common = Options.for_run("notify", run, env=options.env)
        common.check_keys(("on",))
        default = common.choice("on", "DTF_NOTIFY_ON", NOTIFY_ON, "always")
        return options.choice("notify_on", self._notify_on_env, NOTIFY_ON, default)

    @property
    def _notify_on_env(self) -> str:
        return f"DTF_{self.dtf_plugin_name.upper()}_NOTIFY_ON"

    @hookimpl
    def dtf_run_finished(self, run: dict[str, Any], summary: dict[str, Any]) -> None:
        options = self._options(run)
        channel = self.channel(options)
        if channel is None or not should_notify(summary, self._notify_on(options, run)):
            return
        limit = options.integer("max_failures", "DTF_NOTIFY_MAX_FAILURES", 10, minimum=1)
        channel.send(run_notice(run, summary, max_details=limit))
        record_outcome(run["id"], self.dtf_plugin_name, ok=True, kind=self.dtf_plugin_kind)

    @hookimpl
    def dtf_recovery_failed(self, recovery: dict[str, Any]) -> None:
        # Fired on a worker, which sees the environment only (no task file).
        options = Options(self.dtf_plugin_name)
        channel = self.channel(options)
        if channel is None or self._notify_on(options, None) == "never":
            return
        channel.send(recovery_notice(recovery))
        if recovery.get("run_id"):
            record_outcome(
                str(recovery["run_id"]),
                self.dtf_plugin_name,
                ok=True,
                kind=self.dtf_plugin_kind,
            )


class SlackNotifier(_Notifier):
    """``DTF_SLACK_WEBHOOK_URL``: a Slack incoming webhook."""

    dtf_plugin_name = "slack"
    needs = "set DTF_SLACK_WEBHOOK_URL"

    def channel(self, options: Options) -> Channel | None:
        url = options.secret("DTF_SLACK_WEBHOOK_URL")
        return SlackWebhook(url) if url else None


class TeamsNotifier(_Notifier):
    """``DTF_TEAMS_WEBHOOK_URL``: a Teams Workflows (or Incoming Webhook) URL."""

    dtf_plugin_name = "teams"
    needs = "set DTF_TEAMS_WEBHOOK_URL"

    def channel(self, options: Options) -> Channel | None:
        url = options.secret("DTF_TEAMS_WEBHOOK_URL")
        return TeamsWebhook(url) if url else None


class _EmailChannel:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, notice: Notice) -> None:
        message = build_email(notice, self.settings.sender, self.settings.recipients)
        send_email(self.settings, message)


class EmailNotifier(_Notifier):
    """``DTF_SMTP_HOST`` and ``DTF_EMAIL_TO``: mail through an SMTP server."""

    dtf_plugin_name = "email"
    needs = "set DTF_SMTP_HOST and DTF_EMAIL_TO"
    task_keys = (*_Notifier.task_keys, "to", "from")

    def channel(self, options: Options) -> Channel | None:
        settings = smtp_settings(options)
        return _EmailChannel(settings) if settings else None
