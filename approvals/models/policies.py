"""Routing policies: the editable draft, its published versions, the generation counter the
routing cache keys on, and replays of a version against history."""

from __future__ import annotations

import fnmatch
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from approvals.models.choices import RISK_ORDER, ExpiryAction, PolicyOutcome, Risk


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


class Replay(models.Model):
    """One replay of a policy version against the checkpoints of its last `days` days, run
    in the background by `approvals.tasks.replay_run` (replay can read 200,000 checkpoints):
    its state, how far it got and, when done, what it found
    (`approvals.policies.replay.result_data`). The window ends at `created_at`, so running it
    again gives the same figures."""

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
