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
the row is marked failed; the admin can re-send it. The mechanics are `core.outbox`'s; this
module says what a webhook is: its payload, how it is signed and sent, what is audited.
"""

from __future__ import annotations

import json

from django.conf import settings

from agents.models import Agent, Run, WebhookDelivery
from approvals.models import Checkpoint
from approvals.receipts import await_sealed
from approvals.representations import checkpoint_data, ledger_fields
from approvals.services import checkpoints_outcome_received
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.outbox import Outbox
from core.webhooks import SIGNATURE_HEADER, post_json, sign

__all__ = ["OUTBOX", "SIGNATURE_HEADER", "deliver", "record_for_checkpoint", "resend", "sign"]
USER_AGENT = "hitl-portal-webhooks/1"


class WebhookOutbox(Outbox):
    model = WebhookDelivery
    task = "agents.tasks.deliver_webhook"
    name = "webhook"

    def lease_seconds(self) -> int:
        return settings.HITL_WEBHOOK_TIMEOUT + 30

    def retry_hours(self) -> int:
        return settings.HITL_WEBHOOK_RETRY_HOURS

    def load(self, pk) -> WebhookDelivery:
        return WebhookDelivery.objects.select_related("agent").get(pk=pk)

    def send(self, row: WebhookDelivery) -> tuple[int, str]:
        body = json.dumps(
            {**_with_ledger(row), "delivery": str(row.pk)}, separators=(",", ":")
        ).encode()
        headers = {
            "User-Agent": USER_AGENT,
            "X-HITL-Event": row.event,
            "X-HITL-Delivery": str(row.pk),
        }
        return post_json(
            row.url,
            body,
            headers=headers,
            timeout=settings.HITL_WEBHOOK_TIMEOUT,
            secret=row.agent.webhook_secret,
        )

    def finished(self, row: WebhookDelivery, outcome: str, error: str) -> None:
        if outcome == "delivered" and row.checkpoint_id:
            # The agent knows: time to resume ends here.
            checkpoints_outcome_received(
                [row.checkpoint_id], Actor.system("webhooks"), via="webhook"
            )
        audit.record(
            Actor.system("webhooks"),
            AuditVerb.WEBHOOK_DELIVERED if outcome == "delivered" else AuditVerb.WEBHOOK_FAILED,
            row.agent,
            {
                "delivery": str(row.pk),
                "event": row.event,
                "checkpoint": str(row.checkpoint_id),
                "attempts": row.attempts,
                "last_error": error[:500],
            },
        )


OUTBOX = WebhookOutbox()


def _with_ledger(row: WebhookDelivery) -> dict:
    """The payload as recorded in the resolving transaction, with the decision's ledger seq
    and receipt, which exist only once the sequencer has logged it (`await_sealed`)."""
    payload = row.payload
    decision = payload.get("decision")
    if not decision or (decision.get("ledger") or {}).get("seq"):
        return payload
    cp = Checkpoint.with_drills.select_related("agent", "policy").get(pk=row.checkpoint_id)
    decision = {**decision, **ledger_fields(cp, event=await_sealed(cp))}
    return {
        **payload,
        "decision": decision,
        "checkpoint": {**payload["checkpoint"], "decision": decision},
    }


def _payload(cp: Checkpoint, event: str) -> dict:
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
    if "agent" in cp._state.fields_cache:  # the transition loaded it already
        agent = cp.agent
    else:
        agent = Agent.objects.only("id", "callback_url").get(pk=cp.agent_id)
    if not agent.callback_url:
        return None
    event = (
        "checkpoint.cancelled" if cp.status == Checkpoint.Status.CANCELLED else "checkpoint.decided"
    )
    delivery, _created = OUTBOX.owe(
        checkpoint=cp,
        event=event,
        defaults={"agent_id": agent.pk, "url": agent.callback_url, "payload": _payload(cp, event)},
        reason="decided",
    )
    return delivery


def deliver(delivery_id) -> str:
    """One attempt (the `agents.tasks.deliver_webhook` task)."""
    return OUTBOX.deliver(delivery_id)


def resend(delivery: WebhookDelivery, actor: Actor) -> None:
    """Admin action: send again now (delivered or failed ones too), keeping the same id."""
    with audit.atomic():
        OUTBOX.resend(delivery)
        audit.record(
            actor, AuditVerb.WEBHOOK_RESENT, delivery.agent, {"delivery": str(delivery.pk)}
        )
