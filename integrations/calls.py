"""One request of an integration: transport errors and refusals as IntegrationError, no secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

import requests
from dtf.integrations.http import IntegrationError, check_response, redact_secrets


def url_secrets(url: str | None) -> list[str]:
    """The parts of a URL that give access: the URL itself, its path and query, its password.

    A webhook URL is a credential; requests' connection errors quote only its path.
    """
    if not url:
        return []
    parts = urlsplit(url)
    secrets = [url, url.rstrip("/")]
    path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(parts.path.strip("/")) > 0:
        secrets += [path_and_query, parts.path]
        # The last segment alone is the token in most webhook URLs.
        last = parts.path.rstrip("/").rsplit("/", 1)[-1]
        if len(last) >= 8:
            secrets.append(last)
    if parts.password:
        secrets += [parts.password, unquote(parts.password)]
    # Longest first, so that a part never leaves a piece of a longer secret behind.
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def url_password(url: str | None) -> list[str]:
    """The password in a URL's ``user:password@`` part, if any (the rest is not secret)."""
    password = urlsplit(url).password if url else None
    return [password, unquote(password)] if password else []


def call(
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    secrets: Iterable[str | None] = (),
    **kwargs,
) -> requests.Response:
    """Send one request; raise IntegrationError naming ``what`` if it fails or is refused."""
    secrets = list(secrets)
    try:
        response = session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        reason = _reason(exc, url)
        # from None: the chained exception would carry the URL into a logged traceback.
        message = redact_secrets(f"{what}: {type(exc).__name__}: {reason}", secrets)
        raise IntegrationError(message) from None
    return check_response(response, what, secrets)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _reason(exc: requests.RequestException, url: str) -> str:
    """``cannot reach host:port: Connection refused`` rather than urllib3's paragraph."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        parts = urlsplit(url)
        host = parts.hostname or "?"
        where = f"{host}:{parts.port}" if parts.port else host
        found = _ERRNO.search(text)
        if isinstance(exc, requests.Timeout):
            why = "timed out"
        elif found:
            why = found.group(1).strip()
        elif "NameResolutionError" in text or "Name or service not known" in text:
            why = "name not resolved"
        else:
            why = text
        return f"cannot reach {where}: {why}"
    return text
