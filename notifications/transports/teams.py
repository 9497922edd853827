"""Microsoft Teams: an Adaptive Card with a link to the review page, posted to the channel's
incoming webhook (a Workflows "post to a channel when a webhook request is received" URL, or
a legacy connector URL). Teams cards never decide: the button opens the review page. What
others wrote is shown literally (TextRuns: no markdown)."""

from __future__ import annotations

import json

from django.conf import settings

from core.net import url_problem
from core.webhooks import post_json
from notifications.messages import Message
from notifications.models import Delivery, RoleChannel


def validate(channel: RoleChannel) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if problem := url_problem(channel.url, "The channel's incoming webhook URL."):
        errors["url"] = [problem]
    if channel.config:
        errors["config"] = ["Teams takes no config: leave it {}."]
    return errors


def literal(text: str, **style) -> dict:
    """Text shown as it is: a TextRun, where Adaptive Cards render no markdown (a TextBlock
    would turn `[Approve here](https://evil.example)` into a link)."""
    run = {"type": "TextRun", "text": text, **style}
    return {"type": "RichTextBlock", "inlines": [run]}


def _fact(label: str, value: str) -> dict:
    return {
        "type": "RichTextBlock",
        "inlines": [
            {"type": "TextRun", "text": f"{label}: ", "weight": "Bolder"},
            {"type": "TextRun", "text": value},
        ],
    }


def card(message: Message) -> dict:
    """Everything that carries someone else's words (the title, the summary, the arguments,
    names) is literal; only the card's own labels are ours."""
    body = [
        literal(message.headline, weight="Bolder", size="Medium"),
        literal(message.intro),
        {"type": "Container", "items": [_fact(k, v) for k, v in message.facts]},
    ]
    if message.summary:
        body.append(literal(message.summary, isSubtle=True))
    if message.arguments:
        body.append(literal(message.arguments, fontType="Monospace"))
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": message.link_label, "url": message.url}],
    }


def payload(message: Message) -> dict:
    return {
        "type": "message",
        "summary": " ".join(message.headline.split()),  # the notification's preview: one line
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card(message)}
        ],
    }


def send(delivery: Delivery, message: Message) -> tuple[int | None, str]:
    body = json.dumps(payload(message), separators=(",", ":")).encode()
    return post_json(delivery.route.url, body, headers={}, timeout=settings.HITL_NOTIFY_TIMEOUT)
