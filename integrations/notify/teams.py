"""Microsoft Teams incoming webhook: a message carrying one Adaptive Card.

The body is the shape Teams documents for Workflows ("Post to a channel when a
webhook request is received") and for the older Incoming Webhook connector: a
``message`` whose one attachment has content type
``application/vnd.microsoft.card.adaptive`` and an ``AdaptiveCard`` as content.
"""

from __future__ import annotations

from typing import Any

from dtf.integrations.notify.notice import Notice
from dtf.integrations.notify.webhook import IncomingWebhook

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
#: Teams renders Adaptive Cards up to 1.5 on desktop; 1.4 also on mobile.
CARD_VERSION = "1.4"
_COLORS = {"ok": "Good", "failure": "Attention", "critical": "Attention"}


def adaptive_card(notice: Notice) -> dict[str, Any]:
    """The Adaptive Card of a notice: title, summary, a FactSet, detail lines, a link."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": notice.title,
            "size": "Large",
            "weight": "Bolder",
            "color": _COLORS[notice.severity],
            "wrap": True,
        },
        {"type": "TextBlock", "text": notice.text, "wrap": True},
    ]
    if notice.facts:
        body.append(
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in notice.facts]}
        )
    if notice.details:
        body.append(
            {
                "type": "TextBlock",
                "text": notice.details_title,
                "weight": "Bolder",
                "wrap": True,
                "spacing": "Medium",
            }
        )
        lines = [*notice.details, *([f"…and {notice.more} more"] if notice.more else [])]
        body += [
            {"type": "TextBlock", "text": line, "wrap": True, "fontType": "Monospace"}
            for line in lines
        ]
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    }
    if notice.link:
        label, url = notice.link
        card["actions"] = [{"type": "Action.OpenUrl", "title": label, "url": url}]
    return card


def teams_payload(notice: Notice) -> dict[str, Any]:
    """The JSON body posted to the webhook."""
    return {
        "type": "message",
        "attachments": [
            {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": adaptive_card(notice)}
        ],
    }


class TeamsWebhook(IncomingWebhook):
    """Posts notices to one Teams webhook URL (the URL is the secret)."""

    what = "Teams webhook"
    payload = staticmethod(teams_payload)
