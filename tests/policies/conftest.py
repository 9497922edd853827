from __future__ import annotations

import pytest

from agents.services import Ask, ask
from agents.transitions import run_start
from approvals.models import Policy
from approvals.policies import policy_publish, policy_save
from audit.events import Actor
from audit.models import AuditEvent
from tests.api.conftest import agent_key, api, live_portal, run_id  # noqa: F401
from tests.factories import UserFactory
from tests.hosted.conftest import (  # noqa: F401  (the hosted runtime's fixtures)
    hosted,
    ledger_agent,
    sandbox,
    start,
    starter,
)


@pytest.fixture
def admin_user(db):
    user = UserFactory(username="ada", roles=["ops"])
    user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def publish(admin_user):
    """Save and publish a policy through the services, as an administrator does."""

    def make(**fields) -> Policy:
        policy = Policy(**{"stages": [{"role": "ops", "approvals": 1}], **fields})
        policy_save(policy, actor=Actor.for_user(admin_user), by=admin_user)
        policy_publish(policy, user=admin_user)
        return policy

    return make


@pytest.fixture
def request_cp(agent):
    """The agent asks (one checkpoint, its own run)."""

    def make(**fields):
        run = run_start(agent=agent, task="task", actor=Actor.for_agent(agent))
        fields.setdefault("title", "Delete old logs")
        fields.setdefault("action", {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}})
        return ask(run, [Ask(**fields)], actor=Actor.for_agent(agent))[0]

    return make


def events(verb: str, target=None) -> list[AuditEvent]:
    qs = AuditEvent.objects.filter(verb=verb)
    if target is not None:
        qs = qs.filter(target_id=str(target.pk))
    return list(qs.order_by("id"))
