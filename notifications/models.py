"""Who is told what, through which channel, and the record of every delivery."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.crypto import EncryptedTextField
from core.outbox import OutboxItem


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack (incoming webhook)"
    TEAMS = "teams", "Microsoft Teams (incoming webhook)"
    WEBHOOK = "webhook", "Webhook (signed, for paging tools)"


class Event(models.TextChoices):
    REQUESTED = "checkpoint.requested", "Request waiting for the role"
    STAGE = "checkpoint.stage", "Moved to the role's stage"
    ESCALATED = "checkpoint.escalated", "Escalated to the role"
    REMINDER = "checkpoint.reminder", "Reminder before the deadline"
    SLA_REMINDER = "checkpoint.sla_reminder", "Reminder before the SLA target"
    SLA_BREACHED = "checkpoint.sla_breached", "SLA target passed (managers)"
    RESOLVED = "checkpoint.resolved", "Resolved (requester and agent owner)"
    DRILL_FINISHED = "drill.finished", "Drill result (managers)"
    AGENT_HALTED = "agent.halted", "Agent halted (its owner)"
    AGENT_RESUMED = "agent.resumed", "Agent resumed (its owner)"
    DIGEST = "digest", "Hourly digest"
    COALESCED = "coalesced", "New requests, coalesced (more than a person can read)"
    CHAT_REPLY = "chat.reply", "Reply to a chat action"


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class RoleChannel(models.Model):
    """Where a role is told: email to its members, or its team's Slack / Teams channel, or a
    signed webhook (a paging tool). A role without any channel row is emailed. The managers
    group is a role here too (SLA breaches)."""

    role = models.CharField(
        max_length=150, help_text="A review role, or the managers group (SLA breaches)."
    )
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    name = models.CharField(
        max_length=100, blank=True, help_text="What people call it, e.g. “#ops-approvals”."
    )
    url = EncryptedTextField(
        blank=True,
        help_text="Slack / Teams: the incoming webhook URL (a secret: encrypted at rest). "
        "Webhook: the receiver's URL.",
    )
    secret = EncryptedTextField(
        default=new_signing_secret,
        blank=True,
        help_text="Webhook: signs each POST (X-HITL-Signature, as agent webhooks).",
    )
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text='Email: {"to": ["ops-list@example.com"]} to write to a list instead of each '
        'member. Slack: {"interactive": false} for link-only messages.',
    )
    events = models.JSONField(
        default=list,
        blank=True,
        help_text='Only these events, e.g. ["checkpoint.requested", "checkpoint.escalated"]. '
        "Empty: every event the role is told of.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["role", "kind", "id"]
        verbose_name = "role channel"

    def __str__(self) -> str:
        return f"{self.role}: {self.get_kind_display()}" + (f" {self.name}" if self.name else "")

    def clean(self) -> None:
        from notifications.transports import validate_channel

        validate_channel(self)

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class Preference(models.Model):
    """A person's notification settings (their Notifications page)."""

    class EmailMode(models.TextChoices):
        IMMEDIATE = "immediate", "Immediately"
        DIGEST = "digest", "Hourly digest"

    COALESCED = "coalesced", "New requests, coalesced (more than a person can read)"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_pref"
    )
    email = models.BooleanField(default=True, help_text="Email me.")
    email_mode = models.CharField(
        max_length=10, choices=EmailMode.choices, default=EmailMode.IMMEDIATE
    )
    away_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Out of office until then: no notifications, claims released, shown as away.",
    )
    away_note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user}"

    def is_away(self, now=None) -> bool:
        return bool(self.away_until and self.away_until > (now or timezone.now()))


class ChatLink(models.Model):
    """A chat account (a Slack user of a workspace) that its owner linked to their portal
    account, while logged in: what lets a button in Slack decide as them."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_links"
    )
    provider = models.CharField(max_length=20, default="slack")
    team_id = models.CharField(max_length=50)
    chat_user_id = models.CharField(max_length=50)
    chat_name = models.CharField(max_length=150, blank=True)
    mfa_verified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the session that linked it last passed MFA."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "team_id", "chat_user_id"], name="chatlink_one_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.team_id}/{self.chat_user_id} → {self.user}"


class Notice(models.Model):
    """One event that people are told of (a request waiting for a role, a reminder, an
    escalation step, ...): recorded once per (checkpoint, event, occurrence), so a signal sent
    twice or a sweep that runs on two clusters tells nobody twice. It is written in the
    transaction of the change and carries what the fan-out needs (who: `role`, `people`; the
    facts: `data`); the fan-out (recipients, their deliveries) runs after commit, once, and
    sets `fanned_out_at` (see `notifications.events`)."""

    checkpoint = models.ForeignKey(
        "approvals.Checkpoint", on_delete=models.CASCADE, related_name="notices"
    )
    event = models.CharField(max_length=40, choices=Event.choices)
    occurrence = models.CharField(
        max_length=64, blank=True, help_text="Which one: a stage, a ladder step, a deadline."
    )
    role = models.CharField(max_length=150, blank=True)
    people = models.JSONField(
        default=list,
        db_default=[],  # rows written by a process still on the code before this field
        blank=True,
        help_text="Ids of the people told by email, beside the role.",
    )
    data = models.JSONField(default=dict, blank=True, help_text="The facts at the time.")
    created_at = models.DateTimeField(default=timezone.now)
    fanned_out_at = models.DateTimeField(
        null=True, blank=True, help_text="When its deliveries were written (empty: not yet)."
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "event", "occurrence"], name="notice_once"
            ),
        ]
        indexes = [
            # The sweep's "fan-out task lost?" query reads only the few not yet fanned out.
            models.Index(
                fields=["created_at"],
                condition=models.Q(fanned_out_at__isnull=True),
                name="notice_fan_out_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.checkpoint_id} {self.occurrence}".strip()


class Delivery(OutboxItem):
    """One notification to one recipient through one channel (see `core.outbox`): written by
    the fan-out of its notice, sent in batches (by the fan-out task itself, then
    `notifications.tasks.deliver_many`), retried with backoff for HITL_NOTIFY_RETRY_HOURS,
    re-enqueued by the reconcile sweep when a task was lost.

    Coalesced: a notice that would have made a person's mailbox receive more than
    HITL_NOTIFY_COALESCE_PER_MINUTE in a minute is not sent on its own; its row says so and
    names the one "N new requests in your queue" delivery (event `coalesced`) that tells of
    it, sent when its window closes (its `next_attempt_at`)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"
        COALESCED = "coalesced", "Coalesced (told in a summary)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    notice = models.ForeignKey(
        Notice, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=40, choices=Event.choices)
    channel = models.CharField(max_length=10, choices=ChannelKind.choices)
    # One per (notice, channel, target): "user:<id>", "route:<id>", "to:<address>", ...
    target = models.CharField(max_length=200)
    route = models.ForeignKey(
        RoleChannel, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    address = models.CharField(max_length=254, blank=True, help_text="Email address.")
    data = models.JSONField(default=dict, blank=True)
    coalesced_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="coalesced",
        help_text="Coalesced: the summary delivery that tells of it.",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="notify_due",
            ),
            # Coalescing: what a mailbox was sent in the last minute.
            models.Index(
                fields=["address", "created_at"],
                condition=models.Q(channel="email"),
                name="notify_mailbox_recent",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "channel", "target"], name="delivery_once_per_target"
            ),
            # Digests and chat replies belong to no notice: once per channel and target.
            models.UniqueConstraint(
                fields=["channel", "target"],
                condition=models.Q(notice__isnull=True),
                name="delivery_once_without_notice",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.target} ({self.channel}, {self.status})"


class DigestEntry(models.Model):
    """An email held for a person's hourly digest; bundled into one digest delivery."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="digest_entries")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_entries"
    )
    digest = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="entries"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["notice", "recipient"], name="digest_entry_once"),
        ]
        indexes = [
            models.Index(
                fields=["recipient", "created_at"],
                condition=models.Q(digest__isnull=True),
                name="digest_waiting",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.notice} for {self.recipient}"
