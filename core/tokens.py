"""API tokens: `hitl_<prefix>_<secret>`. Only the prefix (indexed, for lookup) and a sha256 of
the secret are stored; comparison is constant-time.

Agent keys (`agents.AgentKey`) and personal tokens (`approvals.UserToken`) share the columns
(`ApiTokenBase`) and the services below; each app's own service wraps them with its audit
event, in one transaction."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "hitl"


@dataclass(frozen=True)
class NewToken:
    prefix: str
    secret_hash: str
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate(kind: str = "") -> NewToken:
    """kind is a short marker in the visible token ('a' agent, 'u' user) for humans' sake."""
    prefix = (kind + secrets.token_hex(6))[:12]
    secret = secrets.token_urlsafe(32)
    return NewToken(prefix, hash_secret(secret), f"{TOKEN_PREFIX}_{prefix}_{secret}")


def split(token: str) -> tuple[str, str] | None:
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


class ApiTokenBase(models.Model):
    """Shared columns of agent keys and personal user tokens."""

    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )


def token_create(model: type[models.Model], *, kind: str, **fields):
    """A new token row of `model`; returns (row, plaintext). The plaintext is never stored:
    show it once."""
    new = generate(kind)
    row = model.objects.create(prefix=new.prefix, secret_hash=new.secret_hash, **fields)
    return row, new.plaintext


def token_revoke(row: ApiTokenBase) -> bool:
    """Revoke once (conditional update): True if this call revoked it, False if it already
    was."""
    return bool(
        type(row)
        .objects.filter(pk=row.pk, revoked_at__isnull=True)
        .update(revoked_at=timezone.now())
    )


def token_authenticate(queryset: models.QuerySet, token: str):
    """The active row of `queryset` whose prefix and secret match `token`, or None.
    Records last use at most once a minute to keep authentication read-mostly."""
    parts = split(token)
    if parts is None:
        return None
    prefix, secret = parts
    now = timezone.now()
    # The prefix is unique: one row at most. Revocation and expiry are checked on it here
    # rather than in SQL (the same rule, `is_active`; a lighter query to build).
    found = list(queryset.filter(prefix=prefix)[:1])
    row = found[0] if found else None
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if not matches(secret, row.secret_hash):
        return None
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        type(row).objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row
