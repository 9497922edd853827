"""Receivers of approvals' signals: what is announced, and to whom. They run inside the
transaction of the change and only record the event (a Notice: who is to be told and the
facts); after commit one task per transaction fans the notices out on the task cluster
(recipients, channels, preferences → Deliveries: the outbox) and the sends follow
(`notifications.events`). A fan-out whose task was lost is done by the sweep. A halt or a
resume is about no checkpoint: its emails are owed in the transaction (`tell`).

    requested        → the current stage's role
    routed (stage)   → the next stage's role
    routed (escal.)  → the ladder step's role
    sla_breached     → the managers
    resolved         → the person the run was started for and the agent's owner
    drill_finished   → the managers (a drill's result: caught, missed, ...)
    agent_halted     → the agent's owner, by email (who halted it and why)
    agent_resumed    → the agent's owner, by email
(reminders before the deadline and the SLA target come from `notifications.sweeps`)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.dispatch import receiver

from agents.signals import agent_halted, agent_resumed
from approvals.models import Checkpoint
from approvals.representations import iso
from approvals.signals import (
    checkpoint_requested,
    checkpoint_resolved,
    checkpoint_routed,
    checkpoint_sla_breached,
    checkpoints_resolved,
    drill_finished,
    drill_resolved,
)
from notifications.events import Spec, announce, announce_many, facts, tell
from notifications.models import Event


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


def _resolved(cp: Checkpoint, *, drill: bool = False) -> Spec:
    # A drill tells nobody outside the review (not the requester, not the agent's owner).
    people = [] if drill else [cp.requester_id, cp.agent.owner_id]
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


@receiver(drill_resolved, dispatch_uid="notifications.drill_resolved")
def on_drill_resolved(sender, checkpoint: Checkpoint, **kwargs) -> None:
    announce(_resolved(checkpoint, drill=True))


@receiver(drill_finished, dispatch_uid="notifications.drill_finished")
def on_drill_finished(sender, drill, checkpoint: Checkpoint, votes=(), **kwargs) -> None:
    # `drill` is an oversight.models.Drill: a sibling app, read through the instance only.
    if drill.outcome == drill.Outcome.WITHDRAWN:
        return  # a manager called it off: there is no result to tell
    announce(
        Spec(
            checkpoint,
            Event.DRILL_FINISHED,
            role=settings.HITL_MANAGERS_GROUP,
            data=facts(
                checkpoint,
                drill=drill.pk,
                name=drill.name,
                outcome=drill.outcome,
                outcome_label=drill.get_outcome_display(),
                defect=drill.defect,
                votes=[list(v) for v in votes],
            ),
        )
    )


def _agent_facts(agent) -> dict:
    return {"agent_id": agent.pk, "agent": agent.slug, "agent_name": agent.name}


@receiver(agent_halted, dispatch_uid="notifications.agent_halted")
def on_agent_halted(
    sender, agent, by, reason: str, cancelled_runs=(), cancelled_checkpoints: int = 0, **kwargs
) -> None:
    tell(
        Event.AGENT_HALTED,
        f"agent:{agent.pk}:halted:{iso(agent.halted_at)}",
        [agent.owner_id],
        {
            **_agent_facts(agent),
            "by": by.get_username(),
            "reason": reason,
            "halted_at": iso(agent.halted_at),
            "cancelled_runs": len(cancelled_runs),
            "cancelled_checkpoints": cancelled_checkpoints,
        },
    )


@receiver(agent_resumed, dispatch_uid="notifications.agent_resumed")
def on_agent_resumed(
    sender, agent, by, halted_at=None, halt_reason: str = "", note: str = "", **kwargs
) -> None:
    tell(
        Event.AGENT_RESUMED,
        f"agent:{agent.pk}:resumed:{iso(halted_at)}",
        [agent.owner_id],
        {
            **_agent_facts(agent),
            "by": by.get_username(),
            "note": note,
            "halted_at": iso(halted_at),
            "halt_reason": halt_reason,
        },
    )
