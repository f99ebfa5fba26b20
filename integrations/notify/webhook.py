"""An incoming webhook: one URL (the secret) that takes a JSON payload per notice."""

from __future__ import annotations

from typing import Any, ClassVar

import requests
from dtf.integrations.calls import call, url_secrets
from dtf.integrations.http import http_session
from dtf.integrations.notify.notice import Notice


class IncomingWebhook:
    """Posts each notice, rendered by ``payload``, to ``url``; errors never show the URL."""

    #: how errors name the service ("Slack webhook")
    what: ClassVar[str] = "webhook"

    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.url = url
        self.session = session or http_session()

    @staticmethod
    def payload(notice: Notice) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, notice: Notice) -> None:
        call(
            self.session,
            "POST",
            self.url,
            what=self.what,
            secrets=url_secrets(self.url),
            json=self.payload(notice),
        )
