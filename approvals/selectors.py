"""Reads. Role filtering lives here, once, and views, admin, API and exports reuse it."""

from __future__ import annotations

from django.db.models import QuerySet

from approvals.models import Checkpoint
from core.roles import is_manager, user_roles


def checkpoints_visible_to(user) -> QuerySet[Checkpoint]:
    """Every checkpoint this user may look at: all for managers and superusers; for a
    reviewer, those whose current required role is one of theirs."""
    qs = Checkpoint.with_drills.all()
    if is_manager(user):
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
