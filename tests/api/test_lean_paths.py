"""The lean create and decision (issue 20) change no answer: authentication is one query per
request and caches nothing, so a revoked key, a halted agent or a revoked personal token is
refused on the very next request; a decision's row lock is its access check (404 for what the
reviewer may not see, before any schema check of an edit)."""

from __future__ import annotations

import pytest

from agents.models import AgentKey
from agents.services import AGENT_KEYS
from agents.transitions import agent_halt
from approvals.models import Checkpoint, Decision, UserToken
from approvals.services import USER_TOKENS, user_token_create
from audit.events import Actor
from tests.api.conftest import Api

pytestmark = pytest.mark.django_db


def test_it_refuses_a_revoked_agent_key_on_the_next_request(api, run_id, ask):
    ask()
    AGENT_KEYS.revoke(AgentKey.objects.get(), Actor.system("test"))
    response = api.post("checkpoints/", {"run": run_id, "title": "again"})
    assert response.status_code == 401
    assert Checkpoint.objects.count() == 1


def test_it_refuses_a_halted_agent_on_the_next_request(api, run_id, ask, manager, agent):
    ask()
    agent_halt(agent.pk, manager, reason="runaway loop")
    response = api.post("checkpoints/", {"run": run_id, "title": "again"})
    assert response.status_code == 423
    assert manager.get_username() in response.json()["detail"]
    assert Checkpoint.objects.count() == 1


def test_it_refuses_a_revoked_personal_token_on_the_next_decision(ask, reviewer):
    first, second = ask(), ask()
    reviewer_api = Api(user_token_create(reviewer, scope="decide"))
    decided = reviewer_api.post(f"checkpoints/{first['id']}/decision/", {"outcome": "approve"})
    assert decided.status_code == 200
    USER_TOKENS.revoke(UserToken.objects.get(user=reviewer), Actor.for_user(reviewer))
    response = reviewer_api.post(f"checkpoints/{second['id']}/decision/", {"outcome": "approve"})
    assert response.status_code == 401
    assert Checkpoint.objects.get(pk=second["id"]).status == Checkpoint.Status.PENDING


def test_it_hides_a_checkpoint_of_another_role_from_an_edit(ask, dba):
    cp = ask()
    response = Api(user_token_create(dba, scope="decide")).post(
        f"checkpoints/{cp['id']}/decision/",
        {"outcome": "modify", "action": {"tool": "delete_files", "args": {"paths": []}}},
    )
    assert response.status_code == 404
    assert not Decision.objects.exists()


def test_it_answers_404_for_an_unknown_checkpoint(reviewer_api):
    unknown = "00000000-0000-4000-8000-000000000000"
    for body in (
        {"outcome": "approve"},
        {"outcome": "modify", "action": {"tool": "t", "args": {}}},
    ):
        response = reviewer_api.post(f"checkpoints/{unknown}/decision/", body)
        assert response.status_code == 404, response.content
