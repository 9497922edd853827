"""Receivers of approvals' signals: the agent side's reaction to a resolved checkpoint."""

from __future__ import annotations

from django.dispatch import receiver

from agents.transitions import run_request_resume
from approvals.models import Checkpoint
from approvals.signals import checkpoint_resolved


@receiver(checkpoint_resolved, dispatch_uid="agents.resume_on_resolved")
def resume_on_resolved(sender, checkpoint: Checkpoint, **kwargs) -> None:
    # Inside the resolving transaction: record the follow-up, enqueue it on commit.
    run_request_resume(checkpoint.run_id, reason=f"checkpoint {checkpoint.pk} {checkpoint.status}")
