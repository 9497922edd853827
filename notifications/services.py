"""Writes of notifications that are not deliveries: a person's preferences and out-of-office
(their claims are released, through the claim transition), chat accounts linked to portal
accounts (what lets a Slack button decide as someone), and role channels. Changes that bear
on who decides or who is told are audited."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from django.utils import timezone

from approvals import transitions
from approvals.models import Checkpoint
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.exceptions import Conflict
from notifications.models import ChatLink, Preference, RoleChannel, new_signing_secret


def preference_for(user) -> Preference:
    pref = Preference.objects.filter(user=user).first()
    return pref or Preference(user=user)


def preferences_save(
    user,
    *,
    email: bool,
    email_mode: str,
    away_until: dt.datetime | None,
    away_note: str = "",
    actor: Actor | None = None,
) -> Preference:
    """Save a person's settings. Going away releases their claims (each through
    `checkpoint_release`, audited) and is audited with its end; coming back early too."""
    actor = actor or Actor.for_user(user)
    now = timezone.now()
    with audit.atomic():
        pref = preference_for(user)
        was_away = pref.is_away(now)
        pref.email, pref.email_mode = email, email_mode
        pref.away_until, pref.away_note = away_until, away_note
        pref.save()
        away = pref.is_away(now)
        if away and (not was_away or pref.away_until != away_until):
            audit.record(actor, AuditVerb.USER_AWAY, user, {"until": away_until, "note": away_note})
        elif was_away and not away:
            audit.record(actor, AuditVerb.USER_BACK, user, {})
        if away:
            release_claims(user)
    return pref


def release_claims(user) -> int:
    """Hand back every active claim of `user` (they are away)."""
    now = timezone.now()
    released = 0
    for pk in Checkpoint.with_drills.filter(
        status=Checkpoint.Status.PENDING, claimed_by=user, claim_expires_at__gt=now
    ).values_list("pk", flat=True):
        try:
            transitions.checkpoint_release(pk, user)
            released += 1
        except Conflict:
            continue  # decided or expired meanwhile
    return released


def chat_link(user, *, team_id: str, chat_user_id: str, chat_name: str, mfa_at=None) -> ChatLink:
    """Link a Slack account to `user` (the user confirmed it while logged in; the link page
    refuses an account linked to someone else). An earlier link of the same Slack account is
    replaced; both changes are audited."""
    with audit.atomic():
        old = (
            ChatLink.objects.select_for_update()
            .filter(provider="slack", team_id=team_id, chat_user_id=chat_user_id)
            .select_related("user")
            .first()
        )
        if old is not None:
            audit.record(
                Actor.for_user(user),
                AuditVerb.USER_CHAT_UNLINKED,
                old.user,
                {"provider": "slack", "team": team_id, "chat_user": chat_user_id},
            )
            old.delete()
        link = ChatLink.objects.create(
            user=user,
            provider="slack",
            team_id=team_id,
            chat_user_id=chat_user_id,
            chat_name=chat_name[:150],
            mfa_verified_at=mfa_at,
        )
        audit.record(
            Actor.for_user(user),
            AuditVerb.USER_CHAT_LINKED,
            user,
            {"provider": "slack", "team": team_id, "chat_user": chat_user_id, "name": chat_name},
        )
    return link


def chat_unlink(link: ChatLink, actor: Actor) -> None:
    with audit.atomic():
        audit.record(
            actor,
            AuditVerb.USER_CHAT_UNLINKED,
            link.user,
            {"provider": link.provider, "team": link.team_id, "chat_user": link.chat_user_id},
        )
        link.delete()


CHANNEL_FIELDS = ["role", "kind", "name", "config", "events", "active"]
# Write-only: a Slack / Teams incoming webhook URL posts to the channel; the secret signs.
CHANNEL_SECRETS = ["url", "secret"]


def masked_url(url: str) -> str:
    """What may be shown of a channel's URL: its scheme and host (the path of an incoming
    webhook URL is its secret)."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.hostname}/…" if parts.scheme and parts.hostname else ""


def masked_secret(secret: str) -> str:
    return f"{secret[:6]}…{secret[-4:]}" if len(secret or "") >= 24 else ("set" if secret else "")


def channel_record(
    channel: RoleChannel, before: dict | None, *, actor: Actor, replaced: list[str] = ()
) -> None:
    """Audit a role channel created or changed. Its URL and secret are never written to the
    trail: only that they were set or replaced (`replaced`), and the URL's host."""
    after = audit.snapshot(channel, CHANNEL_FIELDS)
    host = {"url": masked_url(channel.url)} if channel.url else {}
    if before is None:
        values = {**after, **host, "secret": "set" if channel.secret else ""}
        audit.record(actor, AuditVerb.NOTIFICATION_CHANNEL_CREATED, channel, {"values": values})
        return
    diff = audit.changes(before, after)
    if diff or replaced:
        data: dict = {"changes": diff}
        if replaced:
            data["replaced"] = sorted(replaced)
            data.update(host if "url" in replaced else {})
        audit.record(actor, AuditVerb.NOTIFICATION_CHANNEL_UPDATED, channel, data)


def channel_secret_rotate(channel: RoleChannel, *, actor: Actor) -> str:
    """A new signing secret for a webhook channel (the old one stops verifying at once);
    returned to be shown once."""
    with audit.atomic():
        channel.secret = new_signing_secret()
        RoleChannel.objects.filter(pk=channel.pk).update(secret=channel.secret)
        audit.record(
            actor, AuditVerb.NOTIFICATION_CHANNEL_UPDATED, channel, {"changes": {},
            "replaced": ["secret"]}
        )  # fmt: skip
    return channel.secret
