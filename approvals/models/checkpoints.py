"""Checkpoints, their artifacts and decisions; what shadow-mode policies would have done; the
first time each person opened one.

Status fields are changed only by `approvals.transitions`; nothing else assigns them.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from approvals.models.choices import ExpiryAction, PolicyOutcome, Risk
from approvals.models.policies import Policy, PolicyVersion


class RequestManager(models.Manager):
    """The checkpoints agents asked for: drills (`Checkpoint.drill`) left out."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(drill__isnull=True)


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
    confidence = models.FloatField(
        null=True, blank=True, help_text="The agent's own confidence in the action, 0 to 1."
    )

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    # Routing, copied from the policy at request time so later policy edits don't move it.
    policy = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.SET_NULL)
    policy_version = models.ForeignKey(
        PolicyVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="checkpoints",
        help_text="The published policy version that routed (or decided) it.",
    )
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
    # created_at + sla_seconds; `checkpoint_sla_breach` sets sla_breached_at (once) when a
    # pending checkpoint passes it. Metrics define "breached" from the times
    # (`approvals.durations`), so a decision that beat the sweep by a second still counts.
    sla_due_at = models.DateTimeField(null=True, blank=True)
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    # A manager's drill (a synthetic request reviewers should reject). Only managers' pages
    # read it; agents never see a drill, and nothing resumes or calls back for one.
    drill = models.ForeignKey(
        "oversight.Drill",
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
    # The client's own name for this request (HumanLayer call_id, Claude Code tool_use_id, a
    # LangGraph interrupt id, ...): unique per agent, looked up by the client. A repeat with
    # the same request (same `request_sha256`) is the same checkpoint; another request under
    # the same id is a conflict.
    external_id = models.CharField(max_length=255, blank=True)
    request_sha256 = models.CharField(max_length=64, blank=True)
    # Which outcomes reviewers may choose (empty: every outcome the kind takes), and named
    # reasons for a rejection ([{value, label, description?, prompt_fill?}]).
    allowed_outcomes = models.JSONField(default=list, blank=True)
    reject_options = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    # Drills are left out unless asked for: `Checkpoint.objects` is what agents asked (what
    # an agent, its owner, a webhook or a figure may ever see), `Checkpoint.with_drills` is
    # what reviewers and managers work on. The admin and related managers use `with_drills`
    # (the default manager), so a drill is reviewed like any other request.
    with_drills = models.Manager()
    objects = RequestManager()

    class Meta:
        default_manager_name = "with_drills"
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
            models.UniqueConstraint(
                fields=["agent", "external_id"],
                condition=~Q(external_id=""),
                name="cp_unique_agent_external_id",
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
    """One vote on one stage of a checkpoint: a reviewer's, or a policy version's (an
    automatic decision; then `reviewer` is empty)."""

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
        POLICY = "policy", "Policy (automatic)"
        SLACK = "slack", "Slack"

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decisions",
    )
    policy_version = models.ForeignKey(
        PolicyVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decisions",
        help_text="An automatic decision: the policy version that made it.",
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
            # A person or a policy decided: exactly one of them.
            models.CheckConstraint(
                condition=Q(reviewer__isnull=False, policy_version__isnull=True)
                | Q(reviewer__isnull=True, policy_version__isnull=False),
                name="decision_by_person_or_policy",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decider_label} {self.outcome} {self.checkpoint_id}"

    @property
    def automatic(self) -> bool:
        return self.policy_version_id is not None

    @property
    def decider_label(self) -> str:
        """Who decided: a username, or "policy <name> v<n>"."""
        if self.policy_version_id:
            return f"policy {self.policy_version.label}"
        return self.reviewer.get_username() if self.reviewer_id else ""


class ShadowMatch(models.Model):
    """A published policy in shadow mode matched a request: what it would have decided.
    People still decided; comparing their decision with `would` is the rule's agreement."""

    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="shadow")
    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.CASCADE, related_name="shadow_matches"
    )
    would = models.CharField(max_length=20, choices=PolicyOutcome.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["version", "checkpoint"], name="shadow_once"),
        ]

    def __str__(self) -> str:
        return f"{self.version} would {self.would} {self.checkpoint_id}"


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
