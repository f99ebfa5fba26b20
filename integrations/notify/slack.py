"""Slack incoming webhook: a Block Kit message (header, summary, facts, failures, link).

Slack's limits are kept: a header's text at most 150 characters, a section's text
3000, a section's fields 10 of 2000 each, and a ``text`` fallback for notifications.
"""

from __future__ import annotations

from typing import Any

from dtf.integrations.notify.notice import Notice
from dtf.integrations.notify.webhook import IncomingWebhook

ICONS = {"ok": ":white_check_mark:", "failure": ":x:", "critical": ":rotating_light:"}
_HEADER_MAX = 150
_SECTION_MAX = 3000
_FIELDS_MAX = 10
_FIELD_MAX = 2000


def escape(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` as markup (``<!channel>`` pings everyone)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: Notice) -> dict[str, Any]:
    """The JSON body Slack's incoming webhooks take: ``text`` (fallback) and ``blocks``."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(notice.title, _HEADER_MAX), "emoji": True},
        },
        _section(f"{ICONS[notice.severity]} {escape(notice.text)}"),
    ]
    if notice.facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cut(f"*{escape(k)}*\n{escape(v)}", _FIELD_MAX)}
                    for k, v in notice.facts[:_FIELDS_MAX]
                ],
            }
        )
    if notice.details:
        lines = [f"• {escape(line)}" for line in notice.details]
        if notice.more:
            lines.append(f"_…and {notice.more} more_")
        blocks.append(_section(f"*{escape(notice.details_title)}*\n" + "\n".join(lines)))
    if notice.link:
        label, url = notice.link
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{url}|{escape(label)}>"}],
            }
        )
    return {"text": f"{notice.title}: {notice.text}", "blocks": blocks}


class SlackWebhook(IncomingWebhook):
    """Posts notices to one incoming webhook URL (the URL is the secret)."""

    what = "Slack webhook"
    payload = staticmethod(slack_payload)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SECTION_MAX)}}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
