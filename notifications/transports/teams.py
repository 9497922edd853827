"""Microsoft Teams: an Adaptive Card with a link to the review page, posted to the channel's
incoming webhook (a Workflows "post to a channel when a webhook request is received" URL, or
a legacy connector URL). Teams cards never decide: the button opens the review page."""

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


def card(message: Message) -> dict:
    body = [
        {"type": "TextBlock", "text": message.headline, "weight": "Bolder", "size": "Medium",
         "wrap": True},
        {"type": "TextBlock", "text": message.intro, "wrap": True},
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in message.facts]},
    ]  # fmt: skip
    if message.summary:
        body.append({"type": "TextBlock", "text": message.summary, "wrap": True, "isSubtle": True})
    if message.arguments:
        body.append(
            {"type": "TextBlock", "text": message.arguments, "wrap": True, "fontType": "Monospace"}
        )
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
        "summary": message.headline,
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card(message)}
        ],
    }


def send(delivery: Delivery, message: Message) -> tuple[int | None, str]:
    body = json.dumps(payload(message), separators=(",", ":")).encode()
    return post_json(delivery.route.url, body, headers={}, timeout=settings.HITL_NOTIFY_TIMEOUT)
