"""Receivers of approvals' signals: the agent side's reaction to a resolved checkpoint
(resume the run, owe the agent a webhook). The API wakes its long-poll waiters with its own
receiver (`api.waiters`).

All run inside the resolving transaction: they write outbox rows and register on-commit
follow-ups; nothing slow happens inline. A manager's drill is never announced here (it is
resolved through `drill_resolved`): it resumes nothing and calls nobody back, and
`oversight.drills` closes its run instead.
"""

from __future__ import annotations

from django.dispatch import receiver

from agents.transitions import (
    run_complete_one_shot,
    run_request_resume,
    run_request_resume_many,
)
from agents.webhooks import record_for_checkpoint
from approvals.models import Checkpoint
from approvals.signals import checkpoint_resolved, checkpoints_resolved


@receiver(checkpoint_resolved, dispatch_uid="agents.resume_on_resolved")
def resume_on_resolved(sender, checkpoint: Checkpoint, batch: bool = False, **kwargs) -> None:
    if batch:
        return  # batch: handled in bulk by resume_on_resolved_batch
    if not run_complete_one_shot([checkpoint]):
        run_request_resume(
            checkpoint.run_id, reason=f"checkpoint {checkpoint.pk} {checkpoint.status}"
        )


@receiver(checkpoints_resolved, dispatch_uid="agents.resume_on_resolved_batch")
def resume_on_resolved_batch(sender, checkpoints: list[Checkpoint], **kwargs) -> None:
    completed = run_complete_one_shot(checkpoints)
    run_request_resume_many(
        {cp.run_id for cp in checkpoints} - completed, reason="checkpoints resolved"
    )


@receiver(checkpoint_resolved, dispatch_uid="agents.webhook_on_resolved")
def webhook_on_resolved(sender, checkpoint: Checkpoint, **kwargs) -> None:
    record_for_checkpoint(checkpoint)
