"""The agent side: registered agents, their API keys, and runs."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from core.crypto import EncryptedTextField
from core.net import UnsafeURL, check_url
from core.outbox import OutboxItem
from core.tokens import ApiTokenBase


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


_webhook_secret = new_webhook_secret  # referenced by migration 0001


class Agent(models.Model):
    class Kind(models.TextChoices):
        EXTERNAL = "external", "External (talks to the API)"
        HOSTED = "hosted", "Hosted (runs on the portal's workers)"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EXTERNAL)
    runtime = models.CharField(
        max_length=300, blank=True, help_text="Hosted agents: dotted path of the agent class."
    )
    callback_url = models.URLField(blank=True, max_length=500)
    # Signs the webhooks; encrypted at rest (HITL_ENCRYPTION_KEY), shown once when set.
    webhook_secret = EncryptedTextField(default=new_webhook_secret)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_agents",
        help_text="Four-eyes: the owner can never approve this agent's requests.",
    )
    config = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The kill switch (agents.transitions.agent_halt): while set, the agent's API calls get
    # 423 and its hosted runs do not run. Changed only by agent_halt / agent_resume.
    halted_at = models.DateTimeField(null=True, blank=True, editable=False)
    halted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    halt_reason = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        # Where signed decisions are POSTed: a public address only (`core.net`), as every
        # URL the portal sends to; checked again at each send.
        if self.callback_url:
            try:
                check_url(self.callback_url)
            except UnsafeURL as exc:
                raise ValidationError({"callback_url": str(exc)}) from None

    @property
    def halted(self) -> bool:
        return self.halted_at is not None


class AgentKey(ApiTokenBase):
    """An agent's API key; the plaintext is shown once and never stored."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="keys")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.agent.slug}:{self.prefix}"


class Run(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for a human"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="runs")
    task = models.TextField()
    input = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    complete_when_resolved = models.BooleanField(
        default=False,
        help_text="A one-question run (e.g. `hitl request` without --run): it completes when "
        "its checkpoints are resolved, instead of waiting for its agent to resume it.",
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.RUNNING, db_index=True
    )
    state = models.JSONField(default=dict, blank=True, help_text="Messages, step, observations")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="started_runs",
    )
    # The run's follow-up, named after its first job but used for both: the resume after a
    # decision (waiting runs) and the (re-)execution of a hosted run (running runs). When it
    # was last enqueued and how often: the reconcile sweep re-enqueues lost ones and
    # dead-letters after HITL_MAX_RESUME_ATTEMPTS. (Renaming them would rename columns.)
    resume_requested_at = models.DateTimeField(null=True, blank=True)
    resume_attempts = models.PositiveIntegerField(default=0)
    # Hosted runs: the executor's lease (fencing token + expiry). Only the holder may save the
    # run's state; an expired lease tells the reconcile sweep that the executor died.
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["agent", "-created_at"], name="run_agent_created"),
            models.Index(fields=["status", "resume_requested_at"], name="run_status_resume"),
        ]

    def __str__(self) -> str:
        return f"{self.agent.slug}: {self.task[:60]}"


class RunEvent(models.Model):
    """A line in a run's timeline (steps, tool calls, observations) that reviewers see."""

    class Kind(models.TextChoices):
        LOG = "log", "Log"
        STEP = "step", "Step"
        TOOL_CALL = "tool_call", "Tool call"
        OBSERVATION = "observation", "Observation"
        ERROR = "error", "Error"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.LOG)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["run", "at"], name="runevent_run_at")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.kind}: {self.message[:60]}"


class WebhookDelivery(OutboxItem):
    """The outbox row of one webhook to an agent's callback URL (see `core.outbox`).

    Written inside the resolving transaction (so a decision can never commit without its
    delivery being owed), sent by `agents.tasks.deliver_webhook`, retried with backoff for at
    least `HITL_WEBHOOK_RETRY_HOURS`, re-enqueued by the reconcile sweep when a task was lost.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="webhook_deliveries")
    checkpoint = models.ForeignKey(
        "approvals.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_deliveries",
    )
    event = models.CharField(max_length=64)
    url = models.URLField(max_length=500, help_text="The callback URL when the event happened.")
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_due",
            ),
        ]
        constraints = [
            # One delivery per event per checkpoint: a re-sent signal cannot double the outbox.
            models.UniqueConstraint(
                fields=["checkpoint", "event"], name="webhook_one_per_checkpoint_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.agent.slug} ({self.status})"


class RunStep(models.Model):
    """One tool call of a hosted run, recorded before and after its effect.

    `key` is stable across redeliveries (the call's position in the run), so a resume that is
    delivered twice or recovers from a crash finds the step and never repeats a finished
    effect; a step left `started` was interrupted mid-effect and is finished by the tool's own
    idempotency check (it gets the same idempotency key again).
    """

    class Status(models.TextChoices):
        STARTED = "started", "Started"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=100)
    tool = models.CharField(max_length=100)
    args = models.JSONField(default=dict)
    args_sha256 = models.CharField(max_length=64)
    checkpoint = models.ForeignKey(
        "approvals.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="run_steps",
        help_text="The approval this effect executed under, if it needed one.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTED)
    attempts = models.PositiveSmallIntegerField(default=1)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="runstep_unique_run_key"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.key} {self.tool} {self.status}"

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.key}"


class DeadLetter(models.Model):
    """Work the reconcile sweep gave up on after too many attempts. Shown in the admin so an
    operator sees it; the run itself is failed with the same reason."""

    class Kind(models.TextChoices):
        RESUME = "resume", "Resume after a decision"
        EXECUTE = "execute", "Hosted run execution"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="dead_letters"
    )
    target = models.CharField(max_length=200, blank=True, help_text="What the work was about.")
    attempts = models.PositiveIntegerField(default=0)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.target or self.run_id}"
