"""Four-eyes: whoever asked (the run's starter, or the agent's owner) never decides it."""

from __future__ import annotations

import pytest

from agents.transitions import run_start
from approvals.models import Checkpoint, Decision
from approvals.transitions import checkpoint_claim, checkpoint_decide
from audit.events import Actor
from core.exceptions import NotAllowed
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_it_refuses_the_user_who_started_the_run(make_checkpoint, agent, reviewer):
    run = run_start(agent=agent, task="t", actor=Actor.for_user(reviewer), created_by=reviewer)
    cp = make_checkpoint(run=run)
    assert cp.requester == reviewer
    for outcome in ("approve", "modify", "reject"):
        with pytest.raises(NotAllowed, match="Four-eyes"):
            checkpoint_decide(cp.pk, reviewer, outcome, comment="x", action={"args": {}})
    with pytest.raises(NotAllowed, match="Four-eyes"):
        checkpoint_claim(cp.pk, reviewer)
    assert not Decision.objects.exists()
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_it_refuses_the_agents_owner_even_as_superuser(make_checkpoint, agent):
    owner = UserFactory(username="olga", roles=["ops"], is_superuser=True)
    agent.owner = owner
    agent.save()
    cp = make_checkpoint()
    with pytest.raises(NotAllowed, match="Four-eyes"):
        checkpoint_decide(cp.pk, owner, "approve")
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"


def test_it_lets_another_reviewer_decide(make_checkpoint, agent, reviewer, reviewer2):
    run = run_start(agent=agent, task="t", actor=Actor.for_user(reviewer), created_by=reviewer)
    cp = make_checkpoint(run=run)
    checkpoint_decide(cp.pk, reviewer2, "approve")
    assert Checkpoint.objects.get(pk=cp.pk).status == "approved"
