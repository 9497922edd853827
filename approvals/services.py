"""Writes on the human side that are not checkpoint status changes."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from approvals import audit
from approvals.audit import Actor
from approvals.models import UserToken
from hitlportal import tokens


def user_token_create(user, *, name: str = "", actor: Actor | None = None) -> str:
    """A reviewer's personal API token; returns the plaintext (shown once)."""
    new = tokens.generate("u")
    with transaction.atomic():
        token = UserToken.objects.create(
            user=user, name=name, prefix=new.prefix, secret_hash=new.secret_hash
        )
        audit.record(
            actor or Actor.for_user(user),
            "user.token_created",
            user,
            {"prefix": token.prefix, "name": name},
        )
    return new.plaintext


def user_token_authenticate(token: str) -> UserToken | None:
    return tokens.authenticate(
        UserToken.objects.select_related("user").filter(user__is_active=True), token
    )


def user_token_revoke(token: UserToken, actor: Actor) -> bool:
    with transaction.atomic():
        if UserToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        ):
            audit.record(actor, "user.token_revoked", token.user, {"prefix": token.prefix})
            return True
    return False
