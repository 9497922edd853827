"""Roles are Django groups. Who holds which, and who is a manager (reads everything, decides
nothing): used by every permission check of the portal."""

from __future__ import annotations

from django.conf import settings


def user_roles(user) -> set[str]:
    """The names of the user's groups (cached on the user object for the request)."""
    if not user or not user.is_authenticated:
        return set()
    cached = getattr(user, "_hitl_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._hitl_roles = cached
    return cached


def is_manager(user) -> bool:
    return bool(user and user.is_authenticated) and (
        user.is_superuser or settings.HITL_MANAGERS_GROUP in user_roles(user)
    )
