"""Reads on the agent side, role-filtered once for the admin and the API alike."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from agents.models import Run
from approvals import selectors


def runs_visible_to_person(user) -> QuerySet[Run]:
    """Managers and superusers: every run. Others: the runs they started, and the runs that
    have a checkpoint they may review (the same role filter as the queue)."""
    qs = Run.objects.select_related("agent")
    if selectors.is_manager(user):
        return qs
    reviewable = selectors.checkpoints_visible_to(user).filter(run=OuterRef("pk"))
    return qs.filter(Q(created_by=user) | Exists(reviewable))
