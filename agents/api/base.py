"""Shared pieces of the agent API views."""

from __future__ import annotations

from django.db.models import QuerySet

from agents.api.authentication import is_agent
from agents.models import Run
from agents.selectors import runs_visible_to_person
from approvals import selectors
from approvals.models import Artifact, Checkpoint


def runs_visible_to(user) -> QuerySet[Run]:
    """An agent sees its own runs; a person the runs they started or may review (managers:
    all)."""
    if is_agent(user):
        return Run.objects.select_related("agent").filter(agent=user.agent)
    return runs_visible_to_person(user)


def checkpoints_visible_to(user) -> QuerySet[Checkpoint]:
    """An agent sees its own checkpoints; a person what the role selector lets them see."""
    if is_agent(user):
        return Checkpoint.objects.filter(agent=user.agent)
    return selectors.checkpoints_visible_to(user)


def artifacts_visible_to(user) -> QuerySet[Artifact]:
    if is_agent(user):
        return Artifact.objects.filter(agent=user.agent)
    return Artifact.objects.filter(checkpoint__in=selectors.checkpoints_visible_to(user))
