"""Email over SMTP (smtplib): plain text with an HTML alternative.

Transport security is ``none``, ``starttls`` (upgrade a plain connection, port 587)
or ``ssl`` (TLS from the first byte, port 465). Credentials are sent only over an
encrypted connection, or to a server on this machine.
"""

from __future__ import annotations

import html
import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from dtf.integrations.http import IntegrationError, redact_secrets
from dtf.integrations.notify.notice import Notice
from dtf.integrations.settings import ConfigError, Options

TLS_MODES = ("none", "starttls", "ssl")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
_PREFIX = {"ok": "", "failure": "[FAILED] ", "critical": "[CRITICAL] "}


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail."""

    host: str
    sender: str
    recipients: Sequence[str]
    port: int | None = None
    tls: str = "none"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    #: a CA bundle to verify the server's certificate with (a private CA)
    ca_file: str | None = None
    timeout: float = 20.0

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.tls]


def build_email(notice: Notice, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The message for ``notice``: subject from its title, text and HTML bodies."""
    message = EmailMessage()
    message["Subject"] = _PREFIX[notice.severity] + notice.title
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["X-Dtf-Severity"] = notice.severity
    message.set_content(_text_body(notice))
    message.add_alternative(_html_body(notice), subtype="html")
    return message


def send_email(settings: SmtpSettings, message: EmailMessage) -> None:
    """Deliver ``message`` to ``settings.recipients``; IntegrationError (no password) if refused."""
    secrets = [settings.password]
    where = f"{settings.host}:{settings.effective_port}"
    if settings.user and settings.tls == "none" and not _is_local(settings.host):
        raise IntegrationError(
            f"email via {where}: refusing to send the SMTP password unencrypted; "
            "set DTF_SMTP_TLS=starttls or ssl"
        )
    try:
        with _connect(settings) as smtp:
            if settings.tls == "starttls":
                smtp.starttls(context=_tls_context(settings))
                smtp.ehlo()
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            refused = smtp.send_message(
                message, from_addr=settings.sender, to_addrs=list(settings.recipients)
            )
    except (smtplib.SMTPException, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise IntegrationError(
            redact_secrets(f"email via {where}: {type(exc).__name__}: {reason}", secrets)
        ) from None
    if refused:
        raise IntegrationError(f"email via {where}: recipients refused: {', '.join(refused)}")


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    port = settings.effective_port
    if settings.tls == "ssl":
        return smtplib.SMTP_SSL(
            settings.host, port, timeout=settings.timeout, context=_tls_context(settings)
        )
    return smtplib.SMTP(settings.host, port, timeout=settings.timeout)


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.ca_file)


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _text_body(notice: Notice) -> str:
    lines = [notice.title, "", notice.text, ""]
    width = max((len(k) for k, _ in notice.facts), default=0)
    lines += [f"{k + ':':<{width + 1}} {v}" for k, v in notice.facts]
    if notice.details:
        lines += ["", f"{notice.details_title}:"]
        lines += [f"  - {line}" for line in notice.details]
        if notice.more:
            lines.append(f"  ...and {notice.more} more")
    if notice.link:
        lines += ["", f"{notice.link[0]}: {notice.link[1]}"]
    return "\n".join(lines) + "\n"


def _html_body(notice: Notice) -> str:
    e = html.escape
    color = {"ok": "#1a7f37", "failure": "#cf222e", "critical": "#cf222e"}[notice.severity]
    rows = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in notice.facts)
    parts = [
        f"<h2 style='color:{color}'>{e(notice.title)}</h2>",
        f"<p>{e(notice.text)}</p>",
        f"<table>{rows}</table>" if rows else "",
    ]
    if notice.details:
        items = "".join(f"<li><code>{e(line)}</code></li>" for line in notice.details)
        if notice.more:
            items += f"<li>…and {notice.more} more</li>"
        parts.append(f"<h3>{e(notice.details_title)}</h3><ul>{items}</ul>")
    if notice.link:
        parts.append(f"<p><a href='{e(notice.link[1], quote=True)}'>{e(notice.link[0])}</a></p>")
    return "<html><body>" + "".join(parts) + "</body></html>"


def smtp_settings(options: Options) -> SmtpSettings | None:
    """SMTP settings from ``DTF_SMTP_*`` and ``DTF_EMAIL_*``; None when no host is set."""
    host = options.text(None, "DTF_SMTP_HOST")
    if not host:
        return None
    recipients = options.words("to", "DTF_EMAIL_TO")
    if not recipients:
        raise ConfigError("DTF_SMTP_HOST is set but DTF_EMAIL_TO is not: name the recipients")
    port = options.integer(None, "DTF_SMTP_PORT", 0, minimum=0) or None
    implied = {465: "ssl", 587: "starttls"}.get(port or 0, "none")
    user = options.text(None, "DTF_SMTP_USER")
    password = options.secret("DTF_SMTP_PASSWORD")
    if user and not password:
        raise ConfigError("DTF_SMTP_USER is set but DTF_SMTP_PASSWORD is not")
    return SmtpSettings(
        host=host,
        port=port,
        tls=options.choice(None, "DTF_SMTP_TLS", TLS_MODES, implied),
        user=user,
        password=password,
        ca_file=options.text(None, "DTF_SMTP_CA_FILE"),
        sender=options.text("from", "DTF_EMAIL_FROM") or f"dtf@{socket.getfqdn()}",
        recipients=recipients,
    )
