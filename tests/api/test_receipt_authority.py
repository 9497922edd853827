"""Who may spend an approval's receipt, through a live portal's port: only the agent whose
checkpoint it is. Everyone else who may see the checkpoint (a manager, its reviewers, a
read-only token, a non-staff member of the role) may check the receipt, and checking writes
nothing; another agent learns nothing of it. A refused redemption spends nothing and records
nothing, and the agent can still act."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agents.services import AGENT_KEYS
from approvals.services import user_token_create
from approvals.transitions import checkpoint_decide
from audit.events import Actor
from audit.models import AuditEvent
from core.models import Receipt
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ACTION = {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}}
ROOT = Path(__file__).resolve().parents[2]


def call(portal, token: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{portal.url}/api/v1/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def approved_receipt(portal, agent_key: str, decider) -> str:
    """Agent A asks over HTTP, `decider` approves, agent A reads its receipt over HTTP."""
    auth = {"Authorization": f"Bearer {agent_key}"}
    run = httpx.post(f"{portal.url}/api/v1/runs/", json={"task": "t"}, headers=auth).json()
    cp = httpx.post(
        f"{portal.url}/api/v1/checkpoints/",
        json={"run": run["id"], "title": "Delete old logs", "action": ACTION},
        headers=auth,
    ).json()
    checkpoint_decide(cp["id"], decider, "approve")
    read = httpx.get(f"{portal.url}/api/v1/checkpoints/{cp['id']}/", headers=auth, timeout=30)
    return read.json()["decision"]["receipt"]


@pytest.fixture
def others(manager, reviewer, reviewer2):
    """Credentials of everyone but agent A, with what the redeem answers each of them."""
    nina = UserFactory(username="nina", roles=["ops"], is_staff=False)
    theirs = AGENT_KEYS.create(AgentFactory(slug="other"), Actor.system("test"))
    return {
        "agent B": (theirs, 404),
        "manager": (user_token_create(manager, scope="decide"), 403),
        "reviewer": (user_token_create(reviewer, scope="decide"), 403),
        "read-scoped token": (user_token_create(reviewer), 403),
        "non-staff ops member": (user_token_create(nina, scope="decide"), 403),
        "reviewer who approved it": (user_token_create(reviewer2, scope="decide"), 403),
    }


def spent_nothing() -> None:
    receipt = Receipt.objects.get()
    assert (receipt.redeemed_at, receipt.redeemed_by) == (None, "")
    assert not AuditEvent.objects.filter(verb="receipt.redeemed").exists()


def test_only_the_checkpoints_agent_redeems_its_receipt(live_portal, agent_key, reviewer2, others):
    token = approved_receipt(live_portal, agent_key, reviewer2)
    for who, (credential, status) in others.items():
        response = call(
            live_portal, credential, "receipts/redeem/", {"receipt": token, "action": ACTION}
        )
        assert response.status_code == status, (who, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), who
        if status == 403:
            assert response.json()["code"] == "not_the_agent", who
            assert "receipts/verify/" in response.json()["detail"], who
        spent_nothing()

    # They may check it; checking writes nothing.
    events = AuditEvent.objects.count()
    for who, (credential, status) in others.items():
        response = call(
            live_portal, credential, "receipts/verify/", {"receipt": token, "action": ACTION}
        )
        if status == 404:
            assert response.status_code == 404, (who, response.text)
            continue
        assert response.status_code == 200, (who, response.text)
        assert (response.json()["valid"], response.json()["problem"]) == (True, None), who
    assert AuditEvent.objects.count() == events
    spent_nothing()

    # The agent still acts, and the ledger names it as the redeemer.
    mine = call(live_portal, agent_key, "receipts/redeem/", {"receipt": token, "action": ACTION})
    assert mine.status_code == 200, mine.text
    assert mine.json()["redeemed_by"] == "agent:bot"
    event = AuditEvent.objects.get(verb="receipt.redeemed")
    assert (event.actor_type, event.actor_label) == ("agent", "bot")
    assert event.data["redeemer"] == "agent:bot"
    assert Receipt.objects.get().redeemed_by == "agent:bot"


def hitl_redeem(portal, key: str, token: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_API_KEY", "HITL_TOKEN")}
    env.update(HITL_URL=portal.url, HITL_API_KEY=key)
    return subprocess.run(
        [sys.executable, "-m", "hitl_client.cli", "redeem", token, "--tool", ACTION["tool"],
         "--args", '{"paths": ["/var/log/a.log"]}'],
        capture_output=True, text=True, env=env, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_hitl_redeem_works_for_the_agent_and_is_refused_to_a_person(
    live_portal, agent_key, reviewer, reviewer2
):
    token = approved_receipt(live_portal, agent_key, reviewer2)
    refused = hitl_redeem(live_portal, user_token_create(reviewer, scope="decide"), token)
    assert refused.returncode != 0 and "Only the agent that asked" in refused.stderr
    spent_nothing()
    redeemed = hitl_redeem(live_portal, agent_key, token)
    assert redeemed.returncode == 0, redeemed.stderr
    assert Receipt.objects.get().redeemed_by == "agent:bot"
