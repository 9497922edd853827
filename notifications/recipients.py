"""Who is told: the people of a role (its deciders, minus anyone out of office) and named
people (the requester, the agent's owner), each through the channels they and their role
chose."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from approvals import rules
from approvals.models import Checkpoint
from notifications.models import ChannelKind, Preference, RoleChannel


def present(qs, now=None):
    """Leave out people who are out of office."""
    return qs.exclude(notification_pref__away_until__gt=now or timezone.now())


def role_people(role: str, cp: Checkpoint | None = None, now=None):
    """The people a role's email reaches: for a review role its deciders (active staff, minus
    the four-eyes exclusions of `cp`); for the managers group its active members; minus
    anyone away."""
    if role == settings.HITL_MANAGERS_GROUP:
        qs = get_user_model().objects.filter(is_active=True, groups__name=role).distinct()
    else:
        qs = rules.deciders(role, cp)
    return present(qs, now)


# The email every role has until it is given an email channel of its own.
DEFAULT_CHANNEL = RoleChannel(kind=ChannelKind.EMAIL, name="(default: email its members)")


def channels_for(roles: set[str]) -> dict[str, list[RoleChannel]]:
    """Each role's active channels. Email is a channel like the others, and every role has
    it by default: a role is emailed (its members, for every event) unless it has an email
    channel row of its own, which then says to whom and for which events, or, inactive, that
    it gets no email. A Slack, Teams or webhook channel adds to the email, never replaces it
    (adding a pager for escalations must not silently stop a role's mail)."""
    found: dict[str, list[RoleChannel]] = {role: [] for role in roles}
    own_email = set()
    for channel in RoleChannel.objects.filter(role__in=roles):
        if channel.kind == ChannelKind.EMAIL:
            own_email.add(channel.role)
        if channel.active:
            found[channel.role].append(channel)
    for role in roles - own_email:
        found[role].insert(0, DEFAULT_CHANNEL)
    return found


def told_by(role: str) -> list[str]:
    """How `role` is told, in words (the role channels admin shows it)."""
    out = []
    for channel in channels_for({role})[role]:
        name = f" {channel.name}" if channel.name and channel.pk else ""
        if channel.pk is None:
            what = "email to its members (the default: no email channel of its own)"
        elif channel.kind == ChannelKind.EMAIL:
            what = "email to " + (", ".join(channel.config.get("to") or []) or "its members")
        else:
            what = channel.get_kind_display().split(" (")[0] + name
        events = ", ".join(channel.events) if channel.events else "every event"
        out.append(f"{what} — {events}")
    return out or ["nothing: its only email channel is inactive, and it has no other"]


def preferences(user_ids) -> dict[int, Preference]:
    return {p.user_id: p for p in Preference.objects.filter(user_id__in=list(user_ids))}


def away_people(user_ids=None, now=None):
    """Preferences of people away now (for the queue's "who is away")."""
    qs = Preference.objects.filter(away_until__gt=now or timezone.now()).select_related("user")
    if user_ids is not None:
        qs = qs.filter(user_id__in=user_ids)
    return qs.order_by("away_until")
