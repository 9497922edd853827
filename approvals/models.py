"""The human side: checkpoints, their artifacts and decisions, routing policies, the audit trail.

Status fields are changed only by `approvals.transitions`; nothing else assigns them.
"""

from __future__ import annotations

import fnmatch
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.tokens import ApiTokenBase


class Risk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


RISK_ORDER = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2, Risk.CRITICAL: 3}


class ExpiryAction(models.TextChoices):
    REJECT = "reject", "Auto-reject"
    ESCALATE = "escalate", "Escalate"


class Policy(models.Model):
    """A routing rule. The first active policy (by priority, then id) whose match fields all
    match a request decides who reviews it; empty match fields match anything."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    priority = models.IntegerField(default=100, help_text="Lower numbers are tried first.")
    match_agent = models.CharField(
        max_length=100, blank=True, help_text="Agent slug glob, e.g. 'sql-*'. Empty: any."
    )
    match_tool = models.CharField(
        max_length=200, blank=True, help_text="Tool name glob, e.g. 'delete_*'. Empty: any."
    )
    match_kind = models.CharField(max_length=20, blank=True, help_text="Checkpoint kind or empty.")
    min_risk = models.CharField(
        max_length=10, choices=Risk.choices, blank=True, help_text="Match this risk and above."
    )
    stages = models.JSONField(
        default=list,
        help_text='Ordered review stages: [{"role": "ops", "approvals": 1}, ...]. Each role must '
        "be a review role (a group with the “Can decide checkpoints” permission).",
    )
    honour_role_hints = models.BooleanField(
        default=True,
        help_text="Add the review role an agent hints at as an extra stage (never instead of "
        "the stages above). Off: hints are ignored.",
    )
    timeout_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds until a request expires or escalates. Empty: HITL_DEFAULT_TIMEOUT.",
    )
    expiry_action = models.CharField(
        max_length=10, choices=ExpiryAction.choices, default=ExpiryAction.REJECT
    )
    escalation_role = models.CharField(
        max_length=150,
        blank=True,
        help_text="One-step escalation: at the deadline, hand the request to this review role "
        "(for the escalation timeout), then auto-reject. For more steps use the ladder.",
    )
    escalation_timeout_seconds = models.PositiveIntegerField(default=1800)
    escalation_ladder = models.JSONField(
        default=list,
        blank=True,
        help_text='Ordered escalation steps after the first deadline, e.g. [{"role": '
        '"ops-leads", "timeout_seconds": 7200}, {"role": "cto", "timeout_seconds": 3600}]; '
        "after the last step the request is rejected (fail-closed). Needs expiry action "
        "Escalate; replaces the escalation role.",
    )
    sla_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Target time to decision, for reports."
    )

    class Meta:
        ordering = ["priority", "id"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Stages and the escalation role are checked when the policy is saved (a typo must
        be a field error now, not a 500 at the next request)."""
        from approvals.policies import validate_policy

        validate_policy(self)

    def matches(self, *, agent_slug: str, tool: str, kind: str, risk: str) -> bool:
        if self.match_agent and not fnmatch.fnmatchcase(agent_slug, self.match_agent):
            return False
        if self.match_tool and not fnmatch.fnmatchcase(tool or "", self.match_tool):
            return False
        if self.match_kind and self.match_kind != kind:
            return False
        return not (self.min_risk and RISK_ORDER[risk] < RISK_ORDER[self.min_risk])


class Checkpoint(models.Model):
    class Kind(models.TextChoices):
        APPROVAL = "approval", "Approval"
        QUESTION = "question", "Question"
        REVIEW = "review", "Review"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        ANSWERED = "answered", "Answered"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    RESOLVED = (Status.APPROVED, Status.REJECTED, Status.ANSWERED, Status.EXPIRED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey("agents.Run", on_delete=models.CASCADE, related_name="checkpoints")
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="checkpoints")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requested_checkpoints",
        help_text="The human on whose behalf the agent asks (four-eyes: may never decide it).",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.APPROVAL)
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    action = models.JSONField(default=dict, blank=True, help_text="{tool, args} as proposed")
    context = models.JSONField(default=dict, blank=True)
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.MEDIUM)
    options = models.JSONField(default=list, blank=True)
    role_hint = models.CharField(max_length=150, blank=True)

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    # Routing, copied from the policy at request time so later policy edits don't move it.
    policy = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.SET_NULL)
    stages = models.JSONField(default=list)
    stage = models.PositiveSmallIntegerField(default=0)
    current_role = models.CharField(max_length=150)
    approvals_needed = models.PositiveSmallIntegerField(default=1)
    deadline = models.DateTimeField()
    expiry_action = models.CharField(
        max_length=10, choices=ExpiryAction.choices, default=ExpiryAction.REJECT
    )
    escalation_role = models.CharField(max_length=150, blank=True)
    escalation_timeout_seconds = models.PositiveIntegerField(default=1800)
    escalated = models.BooleanField(default=False)
    # The policy's escalation ladder as it was at request time ([{"role", "timeout_seconds"}],
    # the one-step escalation included), and how many of its steps were taken.
    escalation_ladder = models.JSONField(default=list, blank=True)
    escalation_step = models.PositiveSmallIntegerField(default=0)
    sla_seconds = models.PositiveIntegerField(null=True, blank=True)

    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_checkpoints",
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)

    # The outcome, once resolved.
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resolved_checkpoints",
    )
    resolution_reason = models.TextField(blank=True)
    final_action = models.JSONField(null=True, blank=True, help_text="The action as approved")
    final_action_sha256 = models.CharField(max_length=64, blank=True)
    answer = models.TextField(blank=True)

    idempotency_key = models.CharField(max_length=255, blank=True)
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deadline", "created_at"]
        permissions = [
            # Deciding is a permission: a group holding it is a *review role*; its active staff
            # members may decide checkpoints routed to it (approvals.rules.can_decide).
            ("decide_checkpoint", "Can decide checkpoints routed to their review roles"),
        ]
        indexes = [
            # The queue: pending items of a role, soonest deadline first.
            models.Index(
                fields=["current_role", "deadline"],
                condition=Q(status="pending"),
                name="cp_queue_pending",
            ),
            # The expiry sweep: pending items by deadline.
            models.Index(
                fields=["deadline"], condition=Q(status="pending"), name="cp_sweep_pending"
            ),
            # The queue's counts (pending, claimed by me, due soon, overdue, and the page count
            # under any filter) read only this index, never the rows.
            models.Index(
                fields=[
                    "current_role",
                    "deadline",
                    "claimed_by",
                    "claim_expires_at",
                    "risk",
                    "kind",
                    "agent",
                ],
                condition=Q(status="pending"),
                name="cp_queue_counts",
            ),
            models.Index(fields=["run", "status"], name="cp_run_status"),
            models.Index(fields=["status", "resolved_at"], name="cp_status_resolved"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="cp_unique_agent_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def claim_is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return bool(self.claimed_by_id and self.claim_expires_at and self.claim_expires_at > now)

    @property
    def next_escalation(self) -> dict | None:
        """The ladder step taken at the next deadline ({"role", "timeout_seconds"}), or None
        when the next deadline expires the request."""
        if self.expiry_action != ExpiryAction.ESCALATE:
            return None
        ladder = self.escalation_ladder or []
        return ladder[self.escalation_step] if self.escalation_step < len(ladder) else None


class Artifact(models.Model):
    class Kind(models.TextChoices):
        DIFF = "diff", "Diff"
        LOG = "log", "Log"
        FILE = "file", "File"
        JSON = "json", "JSON"
        MARKDOWN = "markdown", "Markdown"
        IMAGE = "image", "Image"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    checkpoint = models.ForeignKey(
        Checkpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="artifacts"
    )
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="artifacts"
    )
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FILE)
    content_type = models.CharField(max_length=100, default="text/plain")
    inline = models.TextField(blank=True, help_text="Small text artifacts are stored inline.")
    file = models.FileField(upload_to="artifacts/%Y/%m/", blank=True)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField(default=0)
    # For `review` checkpoints: the reviewer's edited version points at the original.
    edited_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="edits"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def ref(self) -> str:
        return f"artifact://{self.id}"


class Decision(models.Model):
    """One reviewer's vote on one stage of a checkpoint."""

    class Outcome(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        MODIFY = "modify", "Approve with edits"
        ANSWER = "answer", "Answer"

    class Channel(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API"
        ADMIN = "admin", "Admin"
        CLI = "cli", "CLI"
        SLACK = "slack", "Slack"

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions"
    )
    stage = models.PositiveSmallIntegerField(default=0)
    role = models.CharField(max_length=150)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    comment = models.TextField(blank=True)
    edited_action = models.JSONField(null=True, blank=True)
    answer = models.TextField(blank=True)
    # The action this vote approved (after edits): votes for different versions don't add up.
    action_sha256 = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.WEB)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One vote per reviewer per stage: a double-submit cannot count twice.
            models.UniqueConstraint(
                fields=["checkpoint", "reviewer", "stage"], name="decision_one_vote_per_stage"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} {self.outcome} {self.checkpoint_id}"


class UserToken(ApiTokenBase):
    """A person's API token (for the CLI and scripts). Stored as prefix + hash; shown once.

    A token reads (its owner's queue, checkpoints, runs) or, with the decide scope, decides
    too. Where MFA is required, only a token minted from a session that passed MFA
    (`mfa_verified_at`) may decide."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        DECIDE = "decide", "Read and decide"
        # Where step-up applies (MFA), a token decides critical-risk requests only with this.
        DECIDE_CRITICAL = "decide_critical", "Read and decide, critical requests too"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    scope = models.CharField(max_length=20, choices=Scope.choices, default=Scope.READ)
    mfa_verified_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the session that minted it last passed MFA (empty: it did not).",
    )

    def __str__(self) -> str:
        return f"{self.user} {self.prefix}"


class AuditVerb(models.TextChoices):
    """The closed vocabulary of the audit trail. `approvals.audit.record` refuses any other
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
    DECISION_RECORDED = "decision.recorded", "Decision recorded"
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

    @classmethod
    def for_status(cls, status: str) -> AuditVerb:
        """The verb of a checkpoint's resolution: `checkpoint.<status>`."""
        return cls(f"checkpoint.{status}")


class AuditEvent(models.Model):
    """Append-only, hash-chained. Written only by `approvals.audit.record`."""

    class ActorType(models.TextChoices):
        USER = "user", "User"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    seq = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField()
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    verb = models.CharField(max_length=64, choices=AuditVerb.choices, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.verb} {self.target_type}:{self.target_id}"
