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
        help_text='Ordered review stages: [{"role": "ops", "approvals": 1}, ...]',
    )
    timeout_seconds = models.PositiveIntegerField(default=1800)
    expiry_action = models.CharField(
        max_length=10, choices=ExpiryAction.choices, default=ExpiryAction.REJECT
    )
    escalation_role = models.CharField(max_length=150, blank=True)
    escalation_timeout_seconds = models.PositiveIntegerField(default=1800)
    sla_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Target time to decision, for reports."
    )

    class Meta:
        ordering = ["priority", "id"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name

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
    # `action.tool`, copied at request time: oversight groups and filters by it.
    tool = models.CharField(max_length=200, blank=True, default="")
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
    sla_seconds = models.PositiveIntegerField(null=True, blank=True)
    # created_at + sla_seconds; `checkpoint_sla_breach` sets sla_breached_at (once) when a
    # pending checkpoint passes it. Metrics define "breached" from the times
    # (`approvals.metrics`), so a decision that beat the sweep by a second still counts.
    sla_due_at = models.DateTimeField(null=True, blank=True)
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    # A manager's drill (a synthetic request reviewers should reject). Only managers' pages
    # read it; agents never see a drill, and nothing resumes or calls back for one.
    drill = models.ForeignKey(
        "approvals.Drill",
        null=True,
        blank=True,
        on_delete=models.PROTECT,  # a drill must never turn into a real request
        related_name="checkpoints",
    )

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
    # When the agent side learned of the outcome (a hosted run resumed, the webhook was
    # delivered, or the agent read it through the API): "time to resume" ends here.
    resumed_at = models.DateTimeField(null=True, blank=True)

    idempotency_key = models.CharField(max_length=255, blank=True)
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deadline", "created_at"]
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
            # Oversight: rollups by request day and resolution day, refreshed from what
            # changed since the last sweep; type filters; the SLA-breach sweep.
            models.Index(fields=["created_at"], name="cp_created"),
            models.Index(fields=["resolved_at"], name="cp_resolved"),
            models.Index(fields=["updated_at"], name="cp_updated"),
            models.Index(fields=["agent", "tool"], name="cp_agent_tool"),
            models.Index(
                fields=["sla_due_at"],
                condition=Q(status="pending", sla_breached_at__isnull=True),
                name="cp_sla_watch",
            ),
            models.Index(fields=["sla_due_at"], name="cp_sla_due"),
            # The dashboard's "pending now" of a period: the queue, not the period's rows.
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="cp_pending_created"
            ),
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
        indexes = [models.Index(fields=["created_at"], name="decision_created")]
        constraints = [
            # One vote per reviewer per stage: a double-submit cannot count twice.
            models.UniqueConstraint(
                fields=["checkpoint", "reviewer", "stage"], name="decision_one_vote_per_stage"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} {self.outcome} {self.checkpoint_id}"


class UserToken(ApiTokenBase):
    """A reviewer's personal API token (for the CLI and scripts). Stored as prefix + hash."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
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
    CHECKPOINT_VIEWED = "checkpoint.viewed", "Checkpoint opened by a reviewer"
    CHECKPOINT_SLA_BREACHED = "checkpoint.sla_breached", "Checkpoint passed its SLA undecided"
    CHECKPOINT_OUTCOME_RECEIVED = "checkpoint.outcome_received", "Agent received the outcome"
    DECISION_RECORDED = "decision.recorded", "Decision recorded"
    # webhooks to agents (agents.webhooks)
    WEBHOOK_DELIVERED = "webhook.delivered", "Webhook delivered"
    WEBHOOK_FAILED = "webhook.failed", "Webhook failed (gave up)"
    WEBHOOK_RESENT = "webhook.resent", "Webhook re-sent"
    # authority: agents, keys, people, tokens, policies
    AGENT_CREATED = "agent.created", "Agent created"
    AGENT_KEY_CREATED = "agent.key_created", "Agent key created"
    AGENT_KEY_REVOKED = "agent.key_revoked", "Agent key revoked"
    USER_CREATED = "user.created", "User created"
    USER_TOKEN_CREATED = "user.token_created", "Personal token created"
    USER_TOKEN_REVOKED = "user.token_revoked", "Personal token revoked"
    POLICY_CREATED = "policy.created", "Policy created"
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
        indexes = [
            # The audit explorer: newest first under any one filter, without a sort.
            models.Index(fields=["actor_type", "actor_id", "seq"], name="audit_actor_seq"),
            models.Index(fields=["target_type", "target_id", "seq"], name="audit_target_seq"),
            models.Index(fields=["verb", "seq"], name="audit_verb_seq"),
            models.Index(fields=["at"], name="audit_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.verb} {self.target_type}:{self.target_id}"


# --- oversight ----------------------------------------------------------------------------------


class CheckpointView(models.Model):
    """The first time a person opened a checkpoint's review page (one row per person per
    checkpoint, with its `checkpoint.viewed` audit event): where "time spent reviewing"
    starts for the reviewer analytics."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="views")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="checkpoint_views"
    )
    at = models.DateTimeField(default=timezone.now)
    channel = models.CharField(max_length=10, default="web")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "user"], name="cpview_once_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} viewed {self.checkpoint_id}"


class Drill(models.Model):
    """A synthetic request a manager plants among real ones: a copy of a past request with a
    defect, or a written scenario. Reviewers should reject it. It is routed like any other
    and looks the same to them; it never resumes an agent and never calls one back
    (`agents.drills`). Only managers see this row."""

    class Scenario(models.TextChoices):
        COPY = "copy", "Copy of a past request, with a planted defect"
        WRITTEN = "written", "Written scenario"

    class Outcome(models.TextChoices):
        CAUGHT = "caught", "Caught (rejected)"
        EDITED = "edited", "Fixed by an edit (approved with edits)"
        MISSED = "missed", "Missed (approved)"
        EXPIRED = "expired", "Nobody decided (expired)"
        WITHDRAWN = "withdrawn", "Withdrawn"

    name = models.CharField(max_length=200, help_text="For managers only.")
    scenario = models.CharField(max_length=10, choices=Scenario.choices)
    source = models.ForeignKey(
        Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="drill_copies"
    )
    defect = models.TextField(help_text="What is wrong with it: what a careful reviewer catches.")
    # What the agent appears to ask: agent slug, kind, title, summary, action, context, risk,
    # options, artifacts [{name, kind, content}], task.
    request = models.JSONField(default=dict)
    release_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)
    run = models.OneToOneField(
        "agents.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="drill"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["release_at"], condition=Q(released_at__isnull=True), name="drill_due"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class OversightRollup(models.Model):
    """Per day and per group (agent, tool, kind, policy, role, risk): requests made that day,
    and the outcomes, durations and SLA results of what was resolved that day. Kept by the
    sweep (`approvals.metrics.refresh_rollups`) so the dashboard reads a few thousand rows
    instead of every checkpoint, on SQLite and PostgreSQL alike (exact percentiles: the
    durations are kept, sorted, not bucketed)."""

    day = models.DateField()
    agent_id = models.BigIntegerField()
    tool = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=10)
    policy_id = models.BigIntegerField(null=True)
    role = models.CharField(max_length=150)
    risk = models.CharField(max_length=10)
    requests = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    # What was resolved that day, by outcome (`approvals.metrics.outcome`).
    approve = models.PositiveIntegerField(default=0)
    modify = models.PositiveIntegerField(default=0)
    reject = models.PositiveIntegerField(default=0)
    answer = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    sla_total = models.PositiveIntegerField(default=0)
    sla_breached = models.PositiveIntegerField(default=0)
    # Time to decision of each human decision, and time to resume of each resumed one, in
    # milliseconds, comma-separated (read and merged thousands at a time: a plain string
    # costs far less than a JSON value per row to read).
    ttd_ms = models.TextField(blank=True)
    ttr_ms = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["day"], name="rollup_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.agent_id} {self.tool or self.kind} {self.role}"


class RollupState(models.Model):
    """One row: how far `refresh_rollups` got (checkpoints updated after `watermark` are
    looked at again)."""

    name = models.CharField(max_length=50, unique=True)
    watermark = models.DateTimeField(null=True)
    refreshed_at = models.DateTimeField(null=True)
    changed_at = models.DateTimeField(null=True, help_text="When a refresh last rebuilt a day.")

    def __str__(self) -> str:
        return f"{self.name} @ {self.refreshed_at}"
