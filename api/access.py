"""What a caller may see through the API: an agent its own rows; a person what the role
filter (`approvals.selectors`, `agents.selectors`) lets them see. Everything else is a 404."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from agents.models import Run
from agents.selectors import runs_visible_to_person
from api.authentication import is_agent
from approvals import selectors
from approvals.models import Artifact, Checkpoint
from approvals.services import checkpoints_outcome_received
from audit.events import Actor


def visible_runs(principal) -> QuerySet[Run]:
    """An agent sees its own runs; a person the runs they started or may review (managers:
    all)."""
    if is_agent(principal):
        # A drill's run is the manager's, whichever agent it imitates.
        return Run.objects.select_related("agent").filter(agent=principal.agent, drill__isnull=True)
    return runs_visible_to_person(principal)


def visible_checkpoints(principal) -> QuerySet[Checkpoint]:
    """An agent sees its own checkpoints (never a manager's drill made to look like one of
    them); a person what the role selector lets them see."""
    if is_agent(principal):
        return Checkpoint.objects.filter(agent=principal.agent)
    return selectors.checkpoints_visible_to(principal)


def note_agent_read(cp: Checkpoint) -> None:
    """An agent read a resolved checkpoint: it has learned the outcome (time to resume)."""
    if cp.status != Checkpoint.Status.PENDING and cp.resumed_at is None:
        checkpoints_outcome_received([cp.pk], Actor.for_agent(cp.agent), via="api")


def visible_checkpoint(principal, pk) -> Checkpoint:
    """One checkpoint the caller may see (with what its representation reads), else 404."""
    cp = (
        visible_checkpoints(principal)
        .select_related("agent", "policy", "policy_version", "resolved_by")
        .filter(pk=pk)
        .first()
    )
    if cp is None:
        raise NotFound("No such checkpoint.")
    return cp


def visible_artifacts(principal) -> QuerySet[Artifact]:
    if is_agent(principal):
        return Artifact.objects.filter(agent=principal.agent)
    return Artifact.objects.filter(checkpoint__in=selectors.checkpoints_visible_to(principal))


def visible_run(principal, pk) -> Run:
    run = visible_runs(principal).filter(pk=pk).first()
    if run is None:
        raise NotFound("No such run.")
    return run


def visible_artifact(principal, pk) -> Artifact:
    artifact = visible_artifacts(principal).filter(pk=pk).first()
    if artifact is None:
        raise NotFound("No such artifact.")
    return artifact
