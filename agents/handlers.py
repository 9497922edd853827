"""Receivers of approvals' signals: the agent side's reaction to a resolved checkpoint."""

from __future__ import annotations

from django.dispatch import receiver

from agents.transitions import run_request_resume, run_request_resume_many
from approvals.models import Checkpoint
from approvals.signals import checkpoint_resolved, checkpoints_resolved


@receiver(checkpoint_resolved, dispatch_uid="agents.resume_on_resolved")
def resume_on_resolved(sender, checkpoint: Checkpoint, batch: bool = False, **kwargs) -> None:
    if batch:
        return  # handled in bulk by resume_on_resolved_batch
    # Inside the resolving transaction: record the follow-up, enqueue it on commit.
    run_request_resume(checkpoint.run_id, reason=f"checkpoint {checkpoint.pk} {checkpoint.status}")


@receiver(checkpoints_resolved, dispatch_uid="agents.resume_on_resolved_batch")
def resume_on_resolved_batch(sender, checkpoints: list[Checkpoint], **kwargs) -> None:
    run_request_resume_many({cp.run_id for cp in checkpoints}, reason="checkpoints resolved")
