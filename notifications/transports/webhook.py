"""A generic webhook for paging tools and anything else: the event and the checkpoint as
JSON, signed like agent webhooks (`X-HITL-Signature`, verify with
`hitl_client.verify_webhook`), with `X-HITL-Delivery` the same on every retry."""

from __future__ import annotations

import json

from django.conf import settings

from approvals.representations import checkpoint_data
from core.net import url_problem
from core.webhooks import post_json
from notifications.messages import Message
from notifications.models import Delivery, RoleChannel

USER_AGENT = "hitl-portal-notifications/1"


def validate(channel: RoleChannel) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if problem := url_problem(channel.url, "The receiver's URL (https://...)."):
        errors["url"] = [problem]
    if not channel.secret:
        errors["secret"] = ["A signing secret: the receiver verifies each POST with it."]
    if channel.config:
        errors["config"] = ["Webhooks take no config: leave it {}."]
    return errors


def body(delivery: Delivery, message: Message) -> dict:
    return {
        "event": delivery.event,
        "delivery": str(delivery.pk),
        "role": delivery.route.role if delivery.route_id else None,
        "headline": message.headline,
        "text": message.intro,
        "review_url": message.url,
        "facts": (delivery.notice.data or {}) if delivery.notice_id else {},
        "checkpoint": checkpoint_data(message.checkpoint, artifacts=[]),
    }


def send(delivery: Delivery, message: Message) -> tuple[int | None, str]:
    raw = json.dumps(body(delivery, message), separators=(",", ":"), default=str).encode()
    return post_json(
        delivery.route.url,
        raw,
        headers={
            "User-Agent": USER_AGENT,
            "X-HITL-Event": delivery.event,
            "X-HITL-Delivery": str(delivery.pk),
        },
        timeout=settings.HITL_NOTIFY_TIMEOUT,
        secret=delivery.route.secret,
    )
