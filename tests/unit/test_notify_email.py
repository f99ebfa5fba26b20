"""Email over SMTP against a real SMTP server (aiosmtpd) run by the test: envelope,
headers and bodies, STARTTLS with a verified certificate, AUTH, and no leaked password."""

from __future__ import annotations

import socket
import ssl
import subprocess
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from dtf.integrations.http import IntegrationError
from dtf.integrations.notify.email import SmtpSettings, build_email, send_email, smtp_settings
from dtf.integrations.notify.notice import run_notice
from dtf.integrations.settings import ConfigError, Options

from tests.unit.test_notify_webhooks import RUN, SUMMARY

PASSWORD = "pa55-SECRET-word"


class Mailbox:
    """aiosmtpd handler keeping what each DATA command delivered."""

    def __init__(self) -> None:
        self.envelopes: list = []
        self.sessions: list = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.sessions.append(session)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, and the file a client trusts it with."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"ci-bot",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def plain_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield mailbox, controller.port
    controller.stop()


@pytest.fixture
def tls_server(certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield mailbox, controller.port, str(cert)
    controller.stop()


def test_a_plain_smtp_server_gets_the_envelope_headers_and_both_bodies(plain_server):
    mailbox, port = plain_server
    settings = SmtpSettings(
        host="127.0.0.1", port=port, sender="dtf@ci.example", recipients=["a@x.org", "b@x.org"]
    )
    send_email(
        settings, build_email(run_notice(RUN, SUMMARY), settings.sender, ["a@x.org", "b@x.org"])
    )

    [envelope] = mailbox.envelopes
    assert envelope.mail_from == "dtf@ci.example"
    assert envelope.rcpt_tos == ["a@x.org", "b@x.org"]
    message = message_from_bytes(envelope.original_content, policy=policy.default)
    assert message["Subject"] == "[FAILED] dtf run nightly-gpu: failed"
    assert message["From"] == "dtf@ci.example"
    assert message["To"] == "a@x.org, b@x.org"
    assert message["Message-ID"].endswith("@ci.example>")
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    assert "7 passed, 2 failed, 1 skipped (10 tests)" in text
    assert "  - tests/test_a.py::test_lt: failed: assert 1 < 0" in text
    assert "Open the build: https://ci.example/build/7" in text
    html = message.get_body(("html",)).get_content()
    assert "<h2 style='color:#cf222e'>dtf run nightly-gpu: failed</h2>" in html
    # Test output is escaped in HTML.
    assert "E &lt;!channel&gt; x" in html


def test_starttls_with_a_verified_certificate_and_auth(tls_server):
    mailbox, port, ca_file = tls_server
    settings = SmtpSettings(
        host="127.0.0.1", port=port, tls="starttls", user="ci-bot", password=PASSWORD,
        ca_file=ca_file, sender="dtf@ci.example", recipients=["team@x.org"],
    )  # fmt: skip
    send_email(settings, build_email(run_notice(RUN, SUMMARY), settings.sender, ["team@x.org"]))

    [session] = mailbox.sessions
    assert session.authenticated
    assert session.ssl is not None  # the mail went over the upgraded connection
    assert mailbox.envelopes[0].rcpt_tos == ["team@x.org"]


def test_a_wrong_password_fails_with_a_line_that_does_not_hold_it(tls_server):
    _, port, ca_file = tls_server
    settings = SmtpSettings(
        host="127.0.0.1", port=port, tls="starttls", user="ci-bot", password=PASSWORD + "x",
        ca_file=ca_file, sender="dtf@ci.example", recipients=["team@x.org"],
    )  # fmt: skip
    with pytest.raises(IntegrationError) as error:
        send_email(settings, build_email(run_notice(RUN, SUMMARY), settings.sender, ["t@x.org"]))
    message = str(error.value)
    assert message.startswith(f"email via 127.0.0.1:{port}: SMTPAuthenticationError")
    assert PASSWORD not in message


def test_an_untrusted_certificate_is_refused(tls_server):
    _, port, _ = tls_server
    settings = SmtpSettings(
        host="127.0.0.1", port=port, tls="starttls", user="ci-bot", password=PASSWORD,
        sender="dtf@ci.example", recipients=["team@x.org"],
    )  # fmt: skip
    with pytest.raises(IntegrationError, match="CERTIFICATE_VERIFY_FAILED"):
        send_email(settings, build_email(run_notice(RUN, SUMMARY), settings.sender, ["t@x.org"]))


def test_the_password_never_travels_unencrypted_to_another_host():
    settings = SmtpSettings(
        host="smtp.example.invalid", port=25, user="ci-bot", password=PASSWORD,
        sender="dtf@ci.example", recipients=["team@x.org"],
    )  # fmt: skip
    with pytest.raises(IntegrationError, match="refusing to send the SMTP password unencrypted"):
        send_email(settings, build_email(run_notice(RUN, SUMMARY), settings.sender, ["t@x.org"]))


def test_settings_come_from_the_environment_and_the_task_file():
    env = {
        "DTF_SMTP_HOST": "mail.example.org",
        "DTF_SMTP_PORT": "587",
        "DTF_SMTP_USER": "ci-bot",
        "DTF_SMTP_PASSWORD": PASSWORD,
        "DTF_EMAIL_TO": "a@x.org, b@x.org",
    }
    settings = smtp_settings(Options("email", env=env))
    assert (settings.host, settings.effective_port, settings.tls) == (
        "mail.example.org",
        587,
        "starttls",
    )
    assert settings.recipients == ["a@x.org", "b@x.org"]
    assert PASSWORD not in repr(settings)
    task = Options("email", env=env, task={"to": ["ml-team@x.org"], "from": "gpu-ci@x.org"})
    assert smtp_settings(task).recipients == ["ml-team@x.org"]
    assert smtp_settings(task).sender == "gpu-ci@x.org"
    assert smtp_settings(Options("email", env={})) is None
    with pytest.raises(ConfigError, match="DTF_EMAIL_TO is not"):
        smtp_settings(Options("email", env={"DTF_SMTP_HOST": "h"}))
    with pytest.raises(ConfigError, match="DTF_SMTP_TLS: expected one of none, starttls, ssl"):
        smtp_settings(Options("email", env={**env, "DTF_SMTP_TLS": "yes"}))
