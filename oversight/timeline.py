"""A checkpoint's whole story, in order: requested → routed (policy, stages) → viewed →
claimed → each vote with its diff → stage moves, escalation, SLA breach → resolved → the
agent told (webhook) or resumed → the action executed.

Gathered from the audit events about the checkpoint, the events of its run that name it
(waiting on it, resumed after it, a step executed under its approval) and the webhook
events for it; each in words (`describe`)."""

from __future__ import annotations

from django.db.models import Q

from approvals.models import Checkpoint
from audit.models import AuditEvent, AuditVerb
from oversight.describe import Described, describe

STAGE = {
    AuditVerb.CHECKPOINT_REQUESTED: "requested",
    AuditVerb.CHECKPOINT_VIEWED: "viewed",
    AuditVerb.CHECKPOINT_CLAIMED: "claimed",
    AuditVerb.CHECKPOINT_RELEASED: "claimed",
    AuditVerb.CHECKPOINT_REASSIGNED: "claimed",
    AuditVerb.DECISION_RECORDED: "vote",
    AuditVerb.CHECKPOINT_STAGE_ADVANCED: "routed",
    AuditVerb.CHECKPOINT_ESCALATED: "routed",
    AuditVerb.CHECKPOINT_SLA_BREACHED: "sla",
    AuditVerb.CHECKPOINT_APPROVED: "resolved",
    AuditVerb.CHECKPOINT_REJECTED: "resolved",
    AuditVerb.CHECKPOINT_ANSWERED: "resolved",
    AuditVerb.CHECKPOINT_EXPIRED: "resolved",
    AuditVerb.CHECKPOINT_CANCELLED: "resolved",
    AuditVerb.WEBHOOK_DELIVERED: "told",
    AuditVerb.WEBHOOK_FAILED: "told",
    AuditVerb.WEBHOOK_RESENT: "told",
    AuditVerb.CHECKPOINT_OUTCOME_RECEIVED: "resumed",
    AuditVerb.DRILL_SCHEDULED: "drill",
    AuditVerb.DRILL_RELEASED: "drill",
    AuditVerb.DRILL_FINISHED: "drill",
    AuditVerb.DRILL_WITHDRAWN: "drill",
    AuditVerb.RUN_WAITING: "waiting",
    AuditVerb.RUN_RESUMED: "resumed",
    AuditVerb.RUN_STEP_EXECUTED: "executed",
    AuditVerb.RUN_STEP_FAILED: "executed",
}


def _mentions(event: AuditEvent, pk: str) -> bool:
    data = event.data or {}
    if data.get("checkpoint") == pk:
        return True
    return any(isinstance(c, list) and c and c[0] == pk for c in data.get("checkpoints") or [])


def build(cp: Checkpoint) -> list[tuple[str, Described]]:
    pk = str(cp.pk)
    own = AuditEvent.objects.filter(target_type="approvals.checkpoint", target_id=pk)
    run_events = AuditEvent.objects.filter(
        target_type="agents.run",
        target_id=str(cp.run_id),
        verb__in=[
            AuditVerb.RUN_WAITING,
            AuditVerb.RUN_RESUMED,
            AuditVerb.RUN_STEP_EXECUTED,
            AuditVerb.RUN_STEP_FAILED,
        ],
    )
    webhooks = AuditEvent.objects.filter(
        Q(target_type="agents.agent", target_id=str(cp.agent_id)),
        verb__in=[AuditVerb.WEBHOOK_DELIVERED, AuditVerb.WEBHOOK_FAILED],
        data__checkpoint=pk,
    )
    events = list(own.order_by("id")[:500])
    events += [e for e in run_events.order_by("id")[:500] if _mentions(e, pk)]
    events += list(webhooks.order_by("id")[:50])
    if cp.drill_id:
        events += list(
            AuditEvent.objects.filter(
                target_type="approvals.drill", target_id=str(cp.drill_id)
            ).order_by("id")
        )
    events.sort(key=lambda e: e.id)
    return [(STAGE.get(d.event.verb, "other"), d) for d in describe(events)]
