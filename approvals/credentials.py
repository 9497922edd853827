"""The credential of a request that decides: what `approvals.rules.check_credential` checks.
One function for every edge (the review page, the API, later chat), so that a personal token
and a session are judged by the same rule."""

from __future__ import annotations

import datetime as dt

from allauth.account.authentication import get_authentication_records

from approvals.models import UserToken
from approvals.rules import DECIDE, READ, Credential


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


def credential_for(request) -> Credential:
    """A personal token (DRF puts it in `request.auth`) or the portal session."""
    token = getattr(request, "auth", None)
    if isinstance(token, UserToken):
        scopes = {READ, DECIDE} if token.scope == UserToken.Scope.DECIDE else {READ}
        return Credential("token", mfa_at=token.mfa_verified_at, scopes=frozenset(scopes))
    return Credential("session", mfa_at=session_mfa_at(request))
