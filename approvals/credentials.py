"""The credential of a request that decides: what `approvals.rules.check_credential` checks.
One function for every edge (the review page, the API, later chat), so that a personal token
and a session are judged by the same rule."""

from __future__ import annotations

import datetime as dt

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings

from approvals.models import UserToken
from approvals.rules import CRITICAL, DECIDE, READ, SESSION, TOKEN, Credential


def session_mfa_at(request) -> dt.datetime | None:
    """When this login last passed a second factor (allauth's authentication records)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    times = [
        record["at"]
        for record in get_authentication_records(request, user)
        if record.get("method") == "mfa" and isinstance(record.get("at"), int | float)
    ]
    return dt.datetime.fromtimestamp(max(times), tz=dt.UTC) if times else None


def mfa_enabled(user) -> bool:
    """Does step-up apply to this account: it has an authenticator, or the portal requires
    one (HITL_REQUIRE_MFA)?"""
    if settings.HITL_REQUIRE_MFA:
        return True
    return Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.TOTP).exists()


TOKEN_SCOPES = {
    UserToken.Scope.READ: frozenset({READ}),
    UserToken.Scope.DECIDE: frozenset({READ, DECIDE}),
    UserToken.Scope.DECIDE_CRITICAL: frozenset({READ, DECIDE, CRITICAL}),
}


def credential_for(request) -> Credential:
    """A personal token (DRF puts it in `request.auth`) or the portal session."""
    token = getattr(request, "auth", None)
    user = getattr(request, "user", None)
    authenticated = bool(user is not None and user.is_authenticated)

    def enabled() -> bool:  # asked only where step-up applies (a query)
        return authenticated and mfa_enabled(user)

    if isinstance(token, UserToken):
        return Credential(
            TOKEN,
            mfa_at=token.mfa_verified_at,
            scopes=TOKEN_SCOPES.get(token.scope, frozenset({READ})),
            mfa_enabled=enabled,
        )
    return Credential(SESSION, mfa_at=session_mfa_at(request), mfa_enabled=enabled)
