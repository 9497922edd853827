"""Oversight's own rows: drills (synthetic requests planted among real ones) and the daily
rollups the dashboard reads. They moved here from approvals (issue 19) and keep their tables.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Drill(models.Model):
    """A synthetic request a manager plants among real ones: a copy of a past request with a
    defect, or a written scenario. Reviewers should reject it. It is routed like any other
    and looks the same to them; it never resumes an agent and never calls one back
    (`oversight.drills`). Only managers see this row."""

    class Scenario(models.TextChoices):
        COPY = "copy", "Copy of a past request, with a planted defect"
        WRITTEN = "written", "Written scenario"

    class Outcome(models.TextChoices):
        CAUGHT = "caught", "Caught (rejected)"
        EDITED = "edited", "Fixed by an edit (approved with edits)"
        MISSED = "missed", "Missed (approved)"
        EXPIRED = "expired", "Nobody decided (expired)"
        WITHDRAWN = "withdrawn", "Withdrawn"

    # Its audit trail was written as approvals.drill before the model moved here.
    AUDIT_TARGET = "approvals.drill"

    name = models.CharField(max_length=200, help_text="For managers only.")
    scenario = models.CharField(max_length=10, choices=Scenario.choices)
    source = models.ForeignKey(
        "approvals.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="drill_copies",
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
        db_table = "approvals_drill"
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
    sweep (`oversight.analytics.refresh_rollups`) so the dashboard reads a few thousand rows
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
    # What was resolved that day, by outcome (`approvals.durations.outcome`).
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
        db_table = "approvals_oversightrollup"
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

    class Meta:
        db_table = "approvals_rollupstate"

    def __str__(self) -> str:
        return f"{self.name} @ {self.refreshed_at}"
