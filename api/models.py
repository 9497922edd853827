"""The API's own rows: the answers to POSTs made under an `Idempotency-Key`. The model moved
here from agents (issue 19) and keeps its table."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class IdempotencyRecord(models.Model):
    """A POST answered under an `Idempotency-Key`: replayed for the same key and body, refused
    (422) for the same key and another body. Scoped per agent or per user; purged after 48 h
    by `api.idempotency.purge_idempotency_records`."""

    scope = models.CharField(max_length=64, help_text="agent:<id> or user:<id>")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.TextField()
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "agents_idempotencyrecord"
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
