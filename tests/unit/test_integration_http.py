"""The shared HTTP session: retries 5xx with back-off and keeps secrets out of errors."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dtf.integrations.http import IntegrationError, check_response, http_session, redact_secrets


class _Flaky(BaseHTTPRequestHandler):
    statuses: list[int] = []
    seen: list[str] = []

    def do_POST(self):
        self.seen.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
        status = self.statuses.pop(0) if self.statuses else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"token=s3cret rejected" if status >= 400 else b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Flaky.statuses, _Flaky.seen = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_a_post_answered_with_503_is_retried_until_it_succeeds(server):
    _Flaky.statuses = [503, 502]
    response = http_session(backoff_factor=0).post(f"{server}/hook", data="payload")
    assert response.status_code == 200
    assert _Flaky.seen == ["payload"] * 3


def test_a_refusal_raises_a_one_line_error_without_the_secret(server):
    _Flaky.statuses = [401]
    response = http_session(retries=0).post(f"{server}/hook", data="x")
    with pytest.raises(IntegrationError) as error:
        check_response(response, "Slack webhook", secrets=["s3cret"])
    message = str(error.value)
    assert message.startswith("Slack webhook: HTTP 401 from POST http://127.0.0.1:")
    assert "s3cret" not in message and "\n" not in message


def test_credentials_in_a_url_are_not_printed():
    assert redact_secrets("https://user:tok@h/x tok", ["tok"]) == "https://user:***@h/x ***"
