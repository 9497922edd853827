"""The human side: checkpoints, their artifacts and decisions, routing policies, the audit trail.

Status fields are changed only by `approvals.transitions`; nothing else assigns them.
"""

from __future__ import annotations

import fnmatch
import uuid
from typing import Any

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


class PolicyOutcome(models.TextChoices):
    ROUTE = "route", "Route to reviewers"
    AUTO_APPROVE = "auto_approve", "Approve automatically"
    AUTO_REJECT = "auto_reject", "Reject automatically"


AUTOMATIC_OUTCOMES = (PolicyOutcome.AUTO_APPROVE, PolicyOutcome.AUTO_REJECT)


class Policy(models.Model):
    """A routing rule, edited as a draft and published as an immutable `PolicyVersion`.

    The row holds the working copy: every saved change becomes a new version (a draft)
    that routes nothing until it is published; routing reads only published versions
    (`approvals.policies.route`). The first live policy by priority (then id) whose match
    fields and condition all hold decides what happens to a request."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    priority = models.IntegerField(default=100, help_text="Lower numbers are tried first.")
    match_agent = models.CharField(
        max_length=100, blank=True, help_text="Agent slug glob, e.g. 'sql-*'. Empty: any."
    )
    match_tool = models.CharField(
        max_length=200,
        blank=True,
        help_text="Tool name glob, e.g. 'delete_*'. Empty: any. An exact name (no * ? [) is "
        "indexed: routing tries only the policies that can match a request's tool.",
    )
    match_kind = models.CharField(max_length=20, blank=True, help_text="Checkpoint kind or empty.")
    min_risk = models.CharField(
        max_length=10, choices=Risk.choices, blank=True, help_text="Match this risk and above."
    )
    condition = models.TextField(
        blank=True,
        help_text='A CEL expression over the request, e.g. tool == "delete_files" && '
        'size(args.paths) <= 20 && args.paths.all(p, p.startsWith("/var/log/")). '
        "Variables: agent, tool, args, kind, risk, risk_level, confidence, title, role_hint, "
        "artifacts, now, hour, weekday. Empty: the match fields alone decide.",
    )
    outcome = models.CharField(
        max_length=20, choices=PolicyOutcome.choices, default=PolicyOutcome.ROUTE
    )
    reason = models.TextField(
        blank=True,
        help_text="Automatic outcomes: the reason recorded with the decision and sent to the "
        "agent (required to reject).",
    )
    shadow = models.BooleanField(
        default=False,
        help_text="Shadow mode (automatic outcomes): evaluate and record what it would have "
        "decided on every matching request, while people still decide.",
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this moment the policy matches nothing."
    )
    stages = models.JSONField(
        default=list,
        blank=True,
        help_text='Ordered review stages: [{"role": "ops", "approvals": 1}, ...]. Each role must '
        "be a review role (a group with the “Can decide checkpoints” permission). Required to "
        "route; more approvals per stage where a request needs more eyes.",
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
    # A standing rule ("always allow"), proposed from a review page: the review role whose
    # other reviewers (or a manager) may publish and revoke it, and the request it came from.
    standing_role = models.CharField(
        max_length=150,
        blank=True,
        help_text="Standing rules: the review role whose reviewers may publish or revoke it.",
    )
    proposed_from = models.ForeignKey(
        "Checkpoint",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="standing_rules",
        help_text="Standing rules: the request it was proposed from.",
    )

    # Publication state: which version routes (never part of a version).
    live_version = models.ForeignKey(
        "PolicyVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    STATE_FIELDS = ("id", "live_version", "published_at", "published_by")

    class Meta:
        ordering = ["priority", "id"]
        verbose_name_plural = "policies"
        permissions = [
            ("publish_policy", "Can publish and roll back policies"),
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def versioned_fields(cls) -> list[models.Field]:
        """Every field a version freezes: all but the publication state, so fields added
        later (SLA, escalation ladders, ...) are versioned without a list to keep."""
        return [f for f in cls._meta.concrete_fields if f.name not in cls.STATE_FIELDS]

    @property
    def is_standing(self) -> bool:
        return bool(self.standing_role)

    def clean(self) -> None:
        """Stages, the escalation role and the condition are checked when the policy is
        saved (a typo must be a field error now, not a 500 at the next request)."""
        from approvals.policies import validate_policy

        validate_policy(self)

    def matches(self, *, agent_slug: str, tool: str, kind: str, risk: str) -> bool:
        """The match fields (the glob shorthands); the condition is checked by routing."""
        if self.match_agent and not fnmatch.fnmatchcase(agent_slug, self.match_agent):
            return False
        if self.match_tool and not fnmatch.fnmatchcase(tool or "", self.match_tool):
            return False
        if self.match_kind and self.match_kind != kind:
            return False
        return not (self.min_risk and RISK_ORDER[risk] < RISK_ORDER[self.min_risk])


class PolicyVersion(models.Model):
    """One immutable state of a policy: every versioned field's value (`snapshot`), what
    changed since the version before (`changes`), who made it and when. Checkpoints record
    the version that routed them (PROTECT: a version that decided something is kept)."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    changes = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="policyversion_unique"),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.snapshot.get('name', self.policy_id)} v{self.number}"

    def get(self, name: str, default: Any = None) -> Any:
        return self.snapshot.get(name, default)

    def as_policy(self) -> Policy:
        """The policy as it was in this version (unsaved; its pk is the policy's)."""
        policy = Policy(pk=self.policy_id)
        for f in Policy.versioned_fields():
            if f.name in self.snapshot:
                setattr(policy, f.attname, f.to_python(self.snapshot[f.name]))
        return policy


class PolicyGeneration(models.Model):
    """One row: a counter bumped in every transaction that changes what routes (publish,
    roll back, revoke). Each process compares it with the routing table it compiled and
    recompiles when it moved: publishing takes effect everywhere at the next request."""

    value = models.PositiveBigIntegerField(default=0)
    stamp = models.UUIDField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.value)


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


class Replay(models.Model):
    """One replay of a policy version against the checkpoints of its last `days` days, run
    in the background by `approvals.tasks.replay_run` (replay can read 200,000 checkpoints):
    its state, how far it got and, when done, what it found (`approvals.replay.result_data`).
    The window ends at `created_at`, so running it again gives the same figures."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="replays")
    version = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="replays")
    days = models.PositiveIntegerField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveIntegerField(default=0, help_text="Checkpoints replayed so far.")
    total = models.PositiveIntegerField(default=0, help_text="Checkpoints to replay.")
    attempts = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["policy", "-created_at"], name="replay_by_policy")]

    def __str__(self) -> str:
        return f"replay of {self.version} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


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
