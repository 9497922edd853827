"""Receivers of approvals' signals: the agent side's reaction to a resolved checkpoint.

All of it happens inside the resolving transaction, so it commits (or rolls back) with the
decision: the resume request, the webhook outbox row, and the long-poll NOTIFY."""

from __future__ import annotations

from django.dispatch import receiver

from agents.api.waiters import notify_resolved
from agents.transitions import run_request_resume
from agents.webhooks import record_for_checkpoint
from approvals.models import Checkpoint
from approvals.signals import checkpoint_resolved


@receiver(checkpoint_resolved, dispatch_uid="agents.resume_on_resolved")
def resume_on_resolved(sender, checkpoint: Checkpoint, **kwargs) -> None:
    # Inside the resolving transaction: record the follow-up, enqueue it on commit.
    run_request_resume(checkpoint.run_id, reason=f"checkpoint {checkpoint.pk} {checkpoint.status}")


@receiver(checkpoint_resolved, dispatch_uid="agents.webhook_on_resolved")
def webhook_on_resolved(sender, checkpoint: Checkpoint, **kwargs) -> None:
    record_for_checkpoint(checkpoint)


@receiver(checkpoint_resolved, dispatch_uid="agents.wake_waiters_on_resolved")
def wake_waiters_on_resolved(sender, checkpoint: Checkpoint, **kwargs) -> None:
    notify_resolved(checkpoint.pk)
