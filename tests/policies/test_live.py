"""Against a real portal process (uvicorn, ASGI): a policy published by this process routes
the portal's next request (the other process's compiled table follows the generation
counter); the SDK and the CLI send `confidence` and learn an automatic decision; a halt in
this process is a 423 there, on the API and on the ASGI long-poll fast path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agents.models import Agent
from agents.transitions import agent_halt
from approvals.models import Decision, Policy
from approvals.policies import policy_publish, policy_save
from audit.events import Actor
from hitl_client import HitlClient
from tests.factories import GroupFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def publish_confident_rule() -> Policy:
    GroupFactory(name="ops")
    policy = Policy(
        name="confident restarts",
        match_tool="restart",
        condition="confidence != null && confidence >= 0.95",
        outcome="auto_approve",
        reason="the agent is sure",
    )
    policy_save(policy, actor=Actor.system("test"))
    policy_publish(policy, user=None)
    return policy


def test_sdk_and_cli_send_confidence_and_learn_the_automatic_decision(live_portal, agent_key):
    with HitlClient(live_portal.url, agent_key) as client:
        before = client.request_approval("restart", tool="restart", args={}, confidence=0.99)
        assert before.pending  # no policy yet: people decide
        publish_confident_rule()  # in this process; the portal process picks it up
        cp = client.request_approval("restart", tool="restart", args={}, confidence=0.99)
        assert cp.approved and cp.automatic
        assert cp.decided_by == "policy confident restarts v1"
        assert cp.reason == "the agent is sure"
        assert cp.wait(timeout=5).automatic  # the ASGI long-poll: at once
        unsure = client.request_approval("restart", tool="restart", args={}, confidence=0.5)
        assert unsure.pending and unsure.data["confidence"] == 0.5
        with pytest.raises(ValueError):
            client.request_approval("restart", tool="restart", args={}, confidence=2)

    env = {**os.environ, "HITL_URL": live_portal.url, "HITL_API_KEY": agent_key}
    proc = subprocess.run(
        [sys.executable, "-m", "hitl_client.cli", "request", "--title", "restart", "--tool",
         "restart", "--args", "{}", "--confidence", "0.97", "--wait"],
        capture_output=True, text=True, env=env, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    decision = json.loads(proc.stdout)["decision"]
    assert decision["automatic"] is True
    assert decision["decided_by_policy"] == {"name": "confident restarts", "version": 1}
    assert Decision.objects.filter(policy_version__isnull=False).count() == 2


def test_a_halt_here_is_a_423_there_including_the_long_poll(live_portal, agent_key):
    with HitlClient(live_portal.url, agent_key) as client:
        cp = client.request_approval("restart", tool="restart", args={})
    manager = UserFactory(username="max", roles=["managers"])
    agent_halt(Agent.objects.get(slug="bot").pk, manager, reason="incident 7")
    headers = {"Authorization": f"Bearer {agent_key}"}
    for path in ("/api/v1/runs/", f"/api/v1/checkpoints/{cp.id}/wait?timeout=1"):
        response = httpx.get(live_portal.url + path, headers=headers, timeout=10)
        assert response.status_code == 423, (path, response.text)
        body = response.json()
        assert (body["halted_by"], body["reason"]) == ("max", "incident 7")
