"""One HTTP session for every integration: timeouts, retries with back-off, no leaked secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

#: (connect, read) seconds; an integration never holds a run up for long.
DEFAULT_TIMEOUT = (5.0, 20.0)
#: Statuses a provider documents as "try again later".
RETRY_STATUSES = (429, 500, 502, 503, 504)


class IntegrationError(RuntimeError):
    """An integration's request failed; the message holds no secret."""


class _TimeoutSession(requests.Session):
    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, **kwargs)


def http_session(
    *,
    retries: int = 3,
    backoff_factor: float = 0.5,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    user_agent: str = "dtf",
) -> requests.Session:
    """A session that retries connection errors and 429/5xx (honouring Retry-After)."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        # POST and PATCH too: every call an integration makes is safe to repeat
        # (it creates a status, a comment updated in place, or a keyed result).
        allowed_methods=frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = _TimeoutSession(timeout)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def redact_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def check_response(
    response: requests.Response, what: str, secrets: Iterable[str | None] = ()
) -> requests.Response:
    """Raise IntegrationError naming ``what`` and the status when the provider refused."""
    if response.ok:
        return response
    body = response.text[:300].replace("\n", " ")
    message = f"{what}: HTTP {response.status_code} from {response.request.method} " + (
        f"{_URL_CREDENTIALS.sub('***@', response.url)}: {body}"
    )
    raise IntegrationError(redact_secrets(message, secrets))
