"""Receivers of approvals' signals: what is announced, and to whom. They run inside the
transaction of the change and only write rows (a Notice and its Deliveries: the outbox);
the sends happen after commit, on the task cluster.

    requested        → the current stage's role
    routed (stage)   → the next stage's role
    routed (escal.)  → the ladder step's role
    sla_breached     → the managers
    resolved         → the person the run was started for and the agent's owner
(reminders before the deadline and the SLA target come from `notifications.sweeps`)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.dispatch import receiver

from approvals.models import Checkpoint
from approvals.signals import (
    checkpoint_requested,
    checkpoint_resolved,
    checkpoint_routed,
    checkpoint_sla_breached,
    checkpoints_resolved,
)
from notifications.events import Spec, announce, announce_many, facts
from notifications.models import Event


def _is_drill(cp: Checkpoint) -> bool:
    """A manager's drill (issue 10's `Checkpoint.drill`): reviewers are told as for any
    request, but nobody outside the review (the requester, the agent's owner)."""
    return bool(getattr(cp, "drill_id", None))


@receiver(checkpoint_requested, dispatch_uid="notifications.requested")
def on_requested(sender, checkpoint: Checkpoint, **kwargs) -> None:
    announce(
        Spec(checkpoint, Event.REQUESTED, role=checkpoint.current_role, data=facts(checkpoint))
    )


@receiver(checkpoint_routed, dispatch_uid="notifications.routed")
def on_routed(sender, checkpoint: Checkpoint, reason: str = "", **kwargs) -> None:
    cp = checkpoint
    if reason == "escalated":
        spec = Spec(cp, Event.ESCALATED, str(cp.escalation_step), cp.current_role, data=facts(cp))
    else:
        spec = Spec(cp, Event.STAGE, str(cp.stage), cp.current_role, data=facts(cp))
    announce(spec)


@receiver(checkpoint_sla_breached, dispatch_uid="notifications.sla_breached")
def on_sla_breached(sender, checkpoint: Checkpoint, **kwargs) -> None:
    announce(
        Spec(
            checkpoint,
            Event.SLA_BREACHED,
            role=settings.HITL_MANAGERS_GROUP,
            data=facts(checkpoint),
        )
    )


def _resolved(cp: Checkpoint) -> Spec:
    people = [] if _is_drill(cp) else [cp.requester_id, cp.agent.owner_id]
    decided_by = cp.resolved_by.get_username() if cp.resolved_by_id else ""
    return Spec(
        cp,
        Event.RESOLVED,
        people=[pk for pk in dict.fromkeys(people) if pk],
        data=facts(cp, decided_by=decided_by, reason=cp.resolution_reason),
    )


@receiver(checkpoint_resolved, dispatch_uid="notifications.resolved")
def on_resolved(sender, checkpoint: Checkpoint, batch: bool = False, **kwargs) -> None:
    if not batch:  # a batch is announced at once, below
        announce(_resolved(checkpoint))


@receiver(checkpoints_resolved, dispatch_uid="notifications.resolved_batch")
def on_resolved_batch(sender, checkpoints: list[Checkpoint], **kwargs) -> None:
    prefetch_related_objects(checkpoints, "agent")
    announce_many([_resolved(cp) for cp in checkpoints])
