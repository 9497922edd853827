"""The audit trail's rows: the closed vocabulary of verbs and the append-only events, which are
the ledger's log (`core.ledger`). The bottom app: everything above records into it."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from audit.entry import entry_v1
from core.models import LedgerEntry


class AuditVerb(models.TextChoices):
    """The closed vocabulary of the audit trail. `audit.events.record` refuses any other
    verb, so a typo fails at once (and in tests) instead of hiding an event from every filter
    that looks for the right name."""

    # runs (agents.transitions, the hosted runtime)
    RUN_STARTED = "run.started", "Run started"
    RUN_WAITING = "run.waiting", "Run waiting for a human"
    RUN_RESUMED = "run.resumed", "Run resumed"
    RUN_COMPLETED = "run.completed", "Run completed"
    RUN_FAILED = "run.failed", "Run failed"
    RUN_CANCELLED = "run.cancelled", "Run cancelled"
    RUN_STEP_EXECUTED = "run.step_executed", "Run step executed"
    RUN_STEP_FAILED = "run.step_failed", "Run step failed"
    # checkpoints (approvals.transitions)
    CHECKPOINT_REQUESTED = "checkpoint.requested", "Checkpoint requested"
    CHECKPOINT_CLAIMED = "checkpoint.claimed", "Checkpoint claimed"
    CHECKPOINT_RELEASED = "checkpoint.released", "Checkpoint released"
    CHECKPOINT_REASSIGNED = "checkpoint.reassigned", "Checkpoint reassigned"
    CHECKPOINT_STAGE_ADVANCED = "checkpoint.stage_advanced", "Checkpoint moved to its next stage"
    CHECKPOINT_ESCALATED = "checkpoint.escalated", "Checkpoint escalated"
    CHECKPOINT_APPROVED = "checkpoint.approved", "Checkpoint approved"
    CHECKPOINT_REJECTED = "checkpoint.rejected", "Checkpoint rejected"
    CHECKPOINT_ANSWERED = "checkpoint.answered", "Checkpoint answered"
    CHECKPOINT_EXPIRED = "checkpoint.expired", "Checkpoint expired"
    CHECKPOINT_CANCELLED = "checkpoint.cancelled", "Checkpoint cancelled"
    CHECKPOINT_VIEWED = "checkpoint.viewed", "Checkpoint opened by a reviewer"
    CHECKPOINT_SLA_BREACHED = "checkpoint.sla_breached", "Checkpoint passed its SLA undecided"
    CHECKPOINT_OUTCOME_RECEIVED = "checkpoint.outcome_received", "Agent received the outcome"
    DECISION_RECORDED = "decision.recorded", "Decision recorded"
    # receipts of approvals (approvals.receipts): redeemed once, right before the action
    RECEIPT_REDEEMED = "receipt.redeemed", "Receipt redeemed"
    # webhooks to agents (agents.webhooks)
    WEBHOOK_DELIVERED = "webhook.delivered", "Webhook delivered"
    WEBHOOK_FAILED = "webhook.failed", "Webhook failed (gave up)"
    WEBHOOK_RESENT = "webhook.resent", "Webhook re-sent"
    # notifications to people (notifications)
    NOTIFICATION_FAILED = "notification.failed", "Notification failed (gave up)"
    NOTIFICATION_RESENT = "notification.resent", "Notification re-sent"
    NOTIFICATION_CHANNEL_CREATED = "notification.channel_created", "Notification channel created"
    NOTIFICATION_CHANNEL_UPDATED = "notification.channel_updated", "Notification channel changed"
    NOTIFICATION_CHANNEL_DELETED = "notification.channel_deleted", "Notification channel deleted"
    USER_AWAY = "user.away", "Out of office set"
    USER_BACK = "user.back", "Out of office ended"
    USER_CHAT_LINKED = "user.chat_linked", "Chat account linked"
    USER_CHAT_UNLINKED = "user.chat_unlinked", "Chat account unlinked"
    # authority: agents, keys, people, roles, tokens, policies (each with what changed)
    AGENT_CREATED = "agent.created", "Agent created"
    AGENT_UPDATED = "agent.updated", "Agent changed"
    AGENT_DELETED = "agent.deleted", "Agent deleted"
    AGENT_KEY_CREATED = "agent.key_created", "Agent key created"
    AGENT_KEY_REVOKED = "agent.key_revoked", "Agent key revoked"
    AGENT_WEBHOOK_SECRET_ROTATED = "agent.webhook_secret_rotated", "Agent webhook secret rotated"
    USER_CREATED = "user.created", "User created"
    USER_UPDATED = "user.updated", "User's authority changed"
    USER_DELETED = "user.deleted", "User deleted"
    USER_TOKEN_CREATED = "user.token_created", "Personal token created"
    USER_TOKEN_REVOKED = "user.token_revoked", "Personal token revoked"
    GROUP_CREATED = "group.created", "Role created"
    GROUP_UPDATED = "group.updated", "Role's permissions changed"
    GROUP_DELETED = "group.deleted", "Role deleted"
    POLICY_CREATED = "policy.created", "Policy created"
    POLICY_UPDATED = "policy.updated", "Policy changed"
    POLICY_DELETED = "policy.deleted", "Policy deleted"
    POLICY_PUBLISHED = "policy.published", "Policy version published"
    POLICY_ROLLED_BACK = "policy.rolled_back", "Policy rolled back to an earlier version"
    POLICY_REVOKED = "policy.revoked", "Policy revoked (routes nothing)"
    POLICY_PROPOSED = "policy.proposed", "Standing rule proposed"
    POLICY_REPLAYED = "policy.replayed", "Policy version replayed against history"
    DECISION_AUTOMATIC = "decision.automatic", "Decision made by a policy"
    AGENT_HALTED = "agent.halted", "Agent halted (kill switch)"
    AGENT_RESUMED = "agent.resumed", "Agent resumed after a halt"
    # oversight (managers)
    DRILL_SCHEDULED = "drill.scheduled", "Drill scheduled"
    DRILL_RELEASED = "drill.released", "Drill released to reviewers"
    DRILL_FINISHED = "drill.finished", "Drill finished"
    DRILL_WITHDRAWN = "drill.withdrawn", "Drill withdrawn"
    EXPORT_CREATED = "export.created", "Export downloaded"
    AUDIT_VERIFIED = "audit.verified", "Audit chain verified"

    @classmethod
    def for_status(cls, status: str) -> AuditVerb:
        """The verb of a checkpoint's resolution: `checkpoint.<status>`."""
        return cls(f"checkpoint.{status}")


class AuditEvent(LedgerEntry):
    """Append-only: written only by `audit.events.record` (unsequenced, inside the
    transaction of the change), then given its `seq` and leaf hash by the ledger's sequencer
    (`core.ledger`). The table keeps its name (`approvals_auditevent`) and its admin page."""

    class ActorType(models.TextChoices):
        USER = "user", "User"
        AGENT = "agent", "Agent"
        POLICY = "policy", "Policy"
        SYSTEM = "system", "System"

    at = models.DateTimeField()
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    verb = models.CharField(max_length=64, choices=AuditVerb.choices, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(default=dict)

    class Meta:
        db_table = "approvals_auditevent"  # its name from when it lived in approvals
        ordering = ["id"]
        indexes = [
            # The sequencer's work list: committed entries without a seq, oldest first.
            models.Index(fields=["id"], condition=Q(seq__isnull=True), name="audit_unsequenced"),
            # The audit explorer: newest first under any one filter, without a sort (by id:
            # every event has one from its insert; a seq only once the sequencer logged it).
            models.Index(fields=["actor_type", "actor_id", "id"], name="audit_actor_id"),
            models.Index(fields=["target_type", "target_id", "id"], name="audit_target_id"),
            models.Index(fields=["verb", "id"], name="audit_verb_id"),
            models.Index(fields=["at"], name="audit_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq or '?'} {self.verb} {self.target_type}:{self.target_id}"

    def ledger_entry(self) -> bytes:
        return entry_v1(
            seq=self.seq,
            at=self.at,
            actor_type=self.actor_type,
            actor_id=self.actor_id,
            actor_label=self.actor_label,
            verb=self.verb,
            target_type=self.target_type,
            target_id=self.target_id,
            data=self.data,
        )
