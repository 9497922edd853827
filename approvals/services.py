"""Writes on the human side that are not checkpoint status changes: API tokens, page views,
the "agent learned the outcome" time.

Personal tokens (here) and agent keys (`agents.services`) are two kinds of the same thing:
created (plaintext shown once), authenticated and revoked the same way (`core.tokens`), and
each creation and revocation is audited on the token's owner in the same transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import Checkpoint, CheckpointView, UserToken
from audit import events as audit
from audit.events import Actor, AuditVerb
from core import tokens
from core.exceptions import InvalidInput


@dataclass(frozen=True)
class TokenKind:
    model: type[tokens.ApiTokenBase]
    letter: str  # in the visible token, for humans' sake: hitl_<letter>…
    owner: str  # the foreign key to the owner: the target of the audit events
    created: AuditVerb
    revoked: AuditVerb
    usable: dict = field(default_factory=dict)  # whose tokens authenticate (active owners)

    def create(self, owner, actor: Actor | None = None, *, name: str = "", **fields) -> str:
        """A new token; returns the plaintext, never stored: show it once. `actor` defaults
        to the owner (a person minting their own token); `fields` (scope, expiry...) are
        stored and audited."""
        with audit.atomic():
            row, plaintext = tokens.token_create(
                self.model, kind=self.letter, name=name, **{self.owner: owner}, **fields
            )
            audit.record(
                actor or Actor.for_user(owner), self.created, owner,
                {"prefix": row.prefix, "name": name, **fields},
            )  # fmt: skip
        return plaintext

    def authenticate(self, token: str):
        """The active token row for a bearer token, or None."""
        rows = self.model.objects.select_related(self.owner).filter(**self.usable)
        return tokens.token_authenticate(rows, token)

    def revoke(self, row, actor: Actor) -> bool:
        """Revoke once: False (and no event) if it already was."""
        with audit.atomic():
            if not tokens.token_revoke(row):
                return False
            audit.record(actor, self.revoked, getattr(row, self.owner), {"prefix": row.prefix})
        return True


def user_token_create(
    user,
    *,
    actor: Actor | None = None,
    name: str = "",
    scope: str = UserToken.Scope.READ,
    days: int | None = None,
    mfa_verified_at: dt.datetime | None = None,
) -> str:
    """A personal token: read-only unless `scope` is decide; expires after `days` (default
    HITL_TOKEN_DAYS). `mfa_verified_at`: when the minting session passed MFA (what lets the
    token decide where MFA is required). Returns the plaintext, shown once."""
    if scope not in UserToken.Scope.values:
        raise InvalidInput(f"Scope is one of: {', '.join(UserToken.Scope.values)}.", "scope")
    days = settings.HITL_TOKEN_DAYS if days is None else days
    if not 1 <= days <= 3650:
        raise InvalidInput("A token lives 1 to 3650 days.", "days")
    return USER_TOKENS.create(
        user,
        actor,
        name=name,
        scope=scope,
        expires_at=timezone.now() + dt.timedelta(days=days),
        mfa_verified_at=mfa_verified_at,
    )


USER_TOKENS = TokenKind(
    UserToken, "u", "user", AuditVerb.USER_TOKEN_CREATED, AuditVerb.USER_TOKEN_REVOKED,
    usable={"user__is_active": True},
)  # fmt: skip


# --- people and roles: changes of authority ------------------------------------------------

USER_AUTHORITY_FIELDS = ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]
GROUP_FIELDS = ["name", "permissions"]


def authority_of(user) -> dict:
    """What decides what a person may do: active, staff, superuser, roles, direct perms."""
    return audit.snapshot(user, USER_AUTHORITY_FIELDS)


def user_authority_record(user, before: dict | None, *, actor: Actor) -> None:
    """After an account was created or changed (the admin's form saved it and its groups):
    audit the authority it gained or lost, in the same transaction."""
    after = authority_of(user)
    if before is None:
        audit.record(actor, AuditVerb.USER_CREATED, user, {"values": after})
    elif diff := audit.changes(before, after):
        audit.record(actor, AuditVerb.USER_UPDATED, user, {"changes": diff})


def group_record(group, before: dict | None, *, actor: Actor) -> None:
    """A role created or changed: its permissions (granting `Can decide checkpoints` makes it
    a review role)."""
    after = audit.snapshot(group, GROUP_FIELDS)
    if before is None:
        audit.record(actor, AuditVerb.GROUP_CREATED, group, {"values": after})
    elif diff := audit.changes(before, after):
        audit.record(actor, AuditVerb.GROUP_UPDATED, group, {"changes": diff})


def checkpoint_viewed(cp: Checkpoint, user, *, channel: str = "web") -> bool:
    """Record that `user` opened `cp` (its review page, or its detail through the API), once
    per person per checkpoint, with a `checkpoint.viewed` event: where the reviewer analytics
    start the clock. Returns whether this was the first time."""
    if (
        not user.is_authenticated
        or CheckpointView.objects.filter(checkpoint=cp, user=user).exists()
    ):
        return False
    try:
        with audit.atomic():
            with transaction.atomic():  # a concurrent first view wins; this one is a no-op
                view = CheckpointView.objects.create(checkpoint=cp, user=user, channel=channel)
            audit.record(
                Actor.for_user(user),
                AuditVerb.CHECKPOINT_VIEWED,
                cp,
                {"channel": channel, "status": cp.status, "stage": cp.stage},
            )
    except IntegrityError:
        return False
    return view.pk is not None


def checkpoints_outcome_received(ids, actor: Actor, *, via: str) -> int:
    """The agent side received the outcome of these resolved checkpoints (`via`: "resume" a
    hosted run resumed, "webhook" its delivery succeeded, "api" the agent read it): one
    moment with one name, stamped once as `resumed_at` (where time to resume ends) with a
    `checkpoint.outcome_received` event. Returns how many were stamped (a second call does
    nothing)."""
    at = timezone.now()
    candidates = list(
        Checkpoint.with_drills.filter(pk__in=list(ids), resumed_at__isnull=True)
        .exclude(status=Checkpoint.Status.PENDING)
        .values_list("pk", flat=True)
    )
    if not candidates:
        return 0
    stamped = 0
    with audit.atomic():
        for pk in candidates:
            if Checkpoint.with_drills.filter(pk=pk, resumed_at__isnull=True).update(
                resumed_at=at, updated_at=at
            ):
                audit.record(
                    actor, AuditVerb.CHECKPOINT_OUTCOME_RECEIVED, ("approvals.checkpoint", pk),
                    {"via": via},
                )  # fmt: skip
                stamped += 1
    return stamped
