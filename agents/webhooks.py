"""Signed webhooks to agents, through an outbox.

    POST <callback_url>
    Content-Type: application/json
    X-HITL-Event: checkpoint.decided
    X-HITL-Delivery: <delivery uuid, the same on every retry: deduplicate on it>
    X-HITL-Signature: t=<unix seconds>,v1=<hex hmac-sha256(secret, "<t>.<body>")>

    {"event": "checkpoint.decided", "delivery": ..., "checkpoint": {...}, "decision": {...},
     "run": {...}}

A delivery row is written inside the resolving transaction; `deliver` sends it (django-q2
task), records the attempt, and on failure schedules the next one with exponential backoff;
the reconcile sweep enqueues due and lost ones. After `HITL_WEBHOOK_RETRY_HOURS` of failures
the row is marked failed; the admin can re-send it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import time

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.models import Agent, Run, WebhookDelivery
from approvals import audit
from approvals.audit import Actor
from approvals.models import Checkpoint
from hitlportal.queue import enqueue

log = logging.getLogger(__name__)

DELIVER_TASK = "agents.tasks.deliver_webhook"
SIGNATURE_HEADER = "X-HITL-Signature"
USER_AGENT = "hitl-portal-webhooks/1"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def backoff_seconds(attempts: int) -> float:
    """Delay after the n-th failed attempt: 30 s, 1, 2, 4, 8 ... min, capped at 4 h, ±20 %."""
    base = min(30 * 2 ** max(attempts - 1, 0), 4 * 3600)
    return base * random.uniform(0.8, 1.2)


def _payload(cp: Checkpoint, event: str) -> dict:
    from approvals.api.serializers import checkpoint_data

    data = checkpoint_data(cp)
    run = Run.objects.only("id", "status", "external_id", "task").get(pk=cp.run_id)
    return {
        "event": event,
        "checkpoint": data,
        "decision": data["decision"],
        "run": {
            "id": str(run.id),
            "status": run.status,
            "external_id": run.external_id,
            "task": run.task[:2000],
        },
    }


def record_for_checkpoint(cp: Checkpoint) -> WebhookDelivery | None:
    """Inside the resolving transaction: owe the agent a webhook, send it after commit."""
    agent = Agent.objects.only("id", "callback_url").get(pk=cp.agent_id)
    if not agent.callback_url:
        return None
    event = (
        "checkpoint.cancelled" if cp.status == Checkpoint.Status.CANCELLED else "checkpoint.decided"
    )
    now = timezone.now()
    delivery, created = WebhookDelivery.objects.get_or_create(
        checkpoint=cp,
        event=event,
        defaults={
            "agent_id": agent.pk,
            "url": agent.callback_url,
            "payload": _payload(cp, event),
            "next_attempt_at": now,
            "enqueued_at": now,
            "give_up_at": now + dt.timedelta(hours=settings.HITL_WEBHOOK_RETRY_HOURS),
        },
    )
    if created:
        transaction.on_commit(lambda: enqueue(DELIVER_TASK, str(delivery.pk), reason="decided"))
    return delivery


def _claim(delivery_id) -> WebhookDelivery | None:
    """Take the row for one attempt (compare-and-set): duplicate tasks (ORM redelivery, the
    sweep) do not send twice at the same time."""
    now = timezone.now()
    lease = now + dt.timedelta(seconds=settings.HITL_WEBHOOK_TIMEOUT + 30)
    claimed = (
        WebhookDelivery.objects.filter(
            pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .update(locked_until=lease, attempts=F("attempts") + 1, last_attempt_at=now)
    )
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("agent").get(pk=delivery_id)


def deliver(delivery_id) -> str:
    delivery = _claim(delivery_id)
    if delivery is None:
        return "skipped: delivered, failed, not due, or being sent"
    code, error = None, ""
    # Any exception counts as a failed attempt, not only httpx.HTTPError: a malformed URL
    # raises httpx.InvalidURL, which would otherwise leave the row pending and re-sent forever,
    # never backed off, given up on or audited.
    try:
        code, error = _post(delivery)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    return _record_attempt(delivery, code, error)


def _post(delivery: WebhookDelivery) -> tuple[int, str]:
    body = json.dumps(
        {**delivery.payload, "delivery": str(delivery.pk)}, separators=(",", ":")
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-HITL-Event": delivery.event,
        "X-HITL-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: sign(delivery.agent.webhook_secret, body),
    }
    with httpx.Client(timeout=settings.HITL_WEBHOOK_TIMEOUT, follow_redirects=False) as http:
        response = http.post(delivery.url, content=body, headers=headers)
    code = response.status_code
    return code, "" if 200 <= code < 300 else f"HTTP {code}: {response.text[:500]}"


def _record_attempt(delivery: WebhookDelivery, code: int | None, error: str) -> str:
    now = timezone.now()
    fields = {"last_status_code": code, "last_error": error, "locked_until": None}
    with transaction.atomic():
        if not error:
            fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now)
            outcome = "delivered"
        elif now >= delivery.give_up_at:
            fields.update(status=WebhookDelivery.Status.FAILED)
            outcome = "failed"
        else:
            fields["next_attempt_at"] = now + dt.timedelta(
                seconds=backoff_seconds(delivery.attempts)
            )
            fields["enqueued_at"] = None  # nothing in flight: the sweep sends it when due
            outcome = "retry"
        # Only while this attempt still holds the row: if its lease ran out, another attempt
        # (or a resend) has claimed the row since, and its outcome must not be overwritten.
        # `_claim` set locked_until and bumped attempts; `delivery` holds the values it stored.
        held = WebhookDelivery.objects.filter(
            pk=delivery.pk,
            status=WebhookDelivery.Status.PENDING,
            locked_until=delivery.locked_until,
            attempts=delivery.attempts,
        ).update(**fields)
        if not held:
            log.warning(
                "webhook %s: attempt %s outlived its lease; its outcome (%s) is dropped",
                delivery.pk,
                delivery.attempts,
                outcome,
            )
            return "skipped: lease lost to another attempt"
        if outcome != "retry":
            audit.record(
                Actor.system("webhooks"),
                f"webhook.{outcome}",
                delivery.agent,
                {
                    "delivery": str(delivery.pk),
                    "event": delivery.event,
                    "checkpoint": str(delivery.checkpoint_id),
                    "attempts": delivery.attempts,
                    "last_error": error[:500],
                },
            )
    if error:
        log.info(
            "webhook %s to %s: attempt %s failed (%s)",
            delivery.pk,
            delivery.url,
            delivery.attempts,
            error[:200],
        )
    return outcome


def resend(delivery: WebhookDelivery, actor: Actor) -> None:
    """Admin action: send again now (delivered or failed ones too), keeping the same id."""
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=now,
            enqueued_at=now,
            locked_until=None,
            give_up_at=now + dt.timedelta(hours=settings.HITL_WEBHOOK_RETRY_HOURS),
        )
        audit.record(actor, "webhook.resent", delivery.agent, {"delivery": str(delivery.pk)})
        transaction.on_commit(lambda: enqueue(DELIVER_TASK, str(delivery.pk), reason="resend"))


def enqueue_due(now: dt.datetime | None = None, limit: int = 1000) -> int:
    """The sweep's part: pending deliveries that are due and whose task is not known to be in
    flight (not enqueued since their last attempt, or enqueued longer than the grace ago and
    so presumably lost)."""
    now = now or timezone.now()
    grace = now - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE)
    due = (
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=grace))
        .values_list("pk", flat=True)[:limit]
    )
    count = 0
    for pk in list(due):
        with transaction.atomic():
            owed = WebhookDelivery.objects.filter(pk=pk, status=WebhookDelivery.Status.PENDING)
            if owed.update(enqueued_at=now):
                transaction.on_commit(lambda pk=pk: enqueue(DELIVER_TASK, str(pk), reason="sweep"))
                count += 1
    return count
