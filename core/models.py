"""Core's tables. The ledger's rows (see `core.ledger`): the abstract entry every logged row
extends, the Merkle tree's stored nodes, the signed tree heads, the witnesses' state and the
heads owed to them (an outbox, `core.outbox`), and receipts. Leases that elect one leader
among processes (`core.leases`: e.g. the deadline timer that runs in every task cluster)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.outbox import OutboxItem


class LedgerEntry(models.Model):
    """A row of the transparency log. Written unsequenced (`seq` and `hash` NULL) inside the
    transaction of the change it records; the sequencer assigns `seq` (1, 2, ...) and the RFC
    6962 leaf hash of `ledger_entry()` after commit. Leaf index = seq - 1."""

    seq = models.PositiveBigIntegerField(null=True, blank=True, unique=True)
    hash = models.CharField(max_length=64, null=True, blank=True, help_text="RFC 6962 leaf hash")

    class Meta:
        abstract = True

    def ledger_entry(self) -> bytes:
        """The exact bytes the leaf hash covers (frozen per format version)."""
        raise NotImplementedError


class LedgerNode(models.Model):
    """A complete subtree of the Merkle tree: 2**level leaves starting at index * 2**level.
    Level 0 (the leaves) is the entry rows' `hash`; levels >= 1 are stored here, written once
    by the sequencer and never changed."""

    level = models.PositiveSmallIntegerField()
    index = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "index"], name="ledger_node_unique"),
        ]

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class TreeHead(models.Model):
    """A signed tree head: the tree's size and root at a time, signed with the ledger key.
    One per sequencer batch; the signed message is `core.ledger.heads.message`."""

    origin = models.CharField(max_length=200, help_text="the log's name (HITL_LEDGER_ORIGIN)")
    tree_size = models.PositiveBigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    timestamp = models.PositiveBigIntegerField(help_text="milliseconds since the Unix epoch")
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=100, help_text="base64 Ed25519 signature")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-tree_size"]

    def __str__(self) -> str:
        return f"tree head {self.tree_size} {self.root_hash[:12]}"


class WitnessState(models.Model):
    """Where heads are pushed (a file, a webhook, an email), what it last got, and the latest
    head owed to it (`core.ledger.witnesses`; the deliveries themselves are `WitnessDelivery`
    rows)."""

    url = models.CharField(max_length=500, unique=True)
    last_tree_size = models.PositiveBigIntegerField(default=0, help_text="the last head it got")
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="of the last attempt; empty if it worked")
    owed_tree_size = models.PositiveBigIntegerField(
        default=0, help_text="the latest head owed to it (delivered or not)"
    )
    owed_at = models.DateTimeField(
        null=True, blank=True, help_text="when that head was owed: the interval counts from it"
    )

    def __str__(self) -> str:
        return self.url


class WitnessDelivery(OutboxItem):
    """One signed head owed to one witness, sent through the outbox (`core.outbox`).
    Superseded, instead of sent, when a later head is owed to the same witness before this one
    got through: a witness needs only the latest head."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"
        SUPERSEDED = "superseded", "Superseded by a later head"

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    url = models.CharField(max_length=500)
    tree_size = models.PositiveBigIntegerField()
    head = models.JSONField(help_text="the signed head as JSON (`core.ledger.heads.as_json`)")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "witness deliveries"
        constraints = [
            models.UniqueConstraint(fields=["url", "tree_size"], name="witness_delivery_unique"),
        ]

    def __str__(self) -> str:
        return f"head {self.tree_size} to {self.url}"


class Receipt(models.Model):
    """A single-use permission to perform exactly one approved action. The claims are the
    domain's (what was approved, by whom, under which policy); the token that carries them is
    signed with the ledger key once the approving event has its sequence number
    (`core.ledger.receipts`). Redeemed at most once (conditional update)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject = models.CharField(max_length=100, unique=True, help_text="what it was issued for")
    nonce = models.CharField(max_length=32, unique=True)
    claims = models.JSONField(default=dict)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_by = models.CharField(max_length=200, blank=True)
    redemption = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(redeemed_at__isnull=True), name="rcpt_open"
            )
        ]

    def __str__(self) -> str:
        return f"receipt {self.id} for {self.subject}"


class Lease(models.Model):
    """Who holds the named role until when. Taken and renewed by compare-and-set
    (`core.leases`); an expired lease is free for the next taker."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'free'}"
