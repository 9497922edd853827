"""Reads. Role filtering lives here, once, and views, admin, API and exports reuse it."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from approvals.models import Checkpoint


def user_roles(user) -> set[str]:
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


def can_see_everything(user) -> bool:
    return is_manager(user)


def checkpoints_visible_to(user) -> QuerySet[Checkpoint]:
    """Every checkpoint this user may look at: all for managers and superusers; for a
    reviewer, those whose current required role is one of theirs."""
    qs = Checkpoint.objects.all()
    if can_see_everything(user):
        return qs
    roles = user_roles(user)
    if not roles:
        return qs.none()
    return qs.filter(current_role__in=roles)


def review_queue_for(user) -> QuerySet[Checkpoint]:
    return (
        checkpoints_visible_to(user)
        .filter(status=Checkpoint.Status.PENDING)
        .select_related("agent", "run", "claimed_by")
        .order_by("deadline", "created_at")
    )


def checkpoint_get_for_reviewer(user, pk) -> Checkpoint:
    """Raises Checkpoint.DoesNotExist (→ 404) for anything the user may not see."""
    return checkpoints_visible_to(user).select_related("agent", "run", "policy").get(pk=pk)


def can_decide(user, checkpoint: Checkpoint) -> bool:
    """Role check only; four-eyes and state are enforced by the transition."""
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return checkpoint.current_role in user_roles(user)
