"""The kill switch: a manager halts an agent (a superuser all agents) with a reason; its
pending checkpoints are cancelled, its hosted runs stop at the next step boundary with
nothing executed after the halt, its API calls get 423 naming who and why; audited,
announced (agent_halted), shown on the agent's page and the dashboard; resumed later."""

from __future__ import annotations

import pytest
from django.dispatch import receiver as connect

from agents.models import Agent, Run, RunStep
from agents.signals import agent_halted
from agents.transitions import agent_halt, agent_halt_all, agent_resume
from approvals.models import Checkpoint
from core.exceptions import Conflict, InvalidInput, NotAllowed
from tests.factories import AgentFactory, UserFactory
from tests.hosted.agents import ledger_lines
from tests.policies.conftest import events

pytestmark = pytest.mark.django_db


def test_halting_refuses_api_calls_with_423_naming_who_and_why(api, run_id, manager):
    assert api.get("runs/").status_code == 200
    agent_halt(Agent.objects.get().pk, manager, reason="leaking secrets in logs")

    for response in (
        api.get("runs/"),
        api.post("checkpoints/", {"run": run_id, "title": "t", "action": {"tool": "x"}}),
        api.get(f"runs/{run_id}/"),
    ):
        assert response.status_code == 423
        assert response["Content-Type"] == "application/problem+json"
        body = response.json()
        assert (body["code"], body["agent"], body["halted_by"], body["reason"]) == (
            "agent_halted",
            "bot",
            "max",
            "leaking secrets in logs",
        )
        assert "halted by max" in body["detail"] and body["halted_at"]
    assert not Checkpoint.objects.exists()


def test_the_long_poll_view_refuses_a_halted_agent_too(api, run_id, manager):
    body = {"run": run_id, "title": "t", "action": {"tool": "x", "args": {}}}
    cp = api.post("checkpoints/", body).json()
    agent_halt(Agent.objects.get().pk, manager, reason="incident")
    response = api.get(f"checkpoints/{cp['id']}/wait", timeout=0)
    assert response.status_code == 423 and response.json()["reason"] == "incident"


def test_halting_cancels_pending_checkpoints_and_runs_audited_and_announced(
    request_cp, manager, agent
):
    first, second = request_cp(), request_cp(title="another")
    heard = []

    @connect(agent_halted, dispatch_uid="test-heard")
    def listen(sender, agent, by, reason, cancelled_runs, cancelled_checkpoints, **kw):
        heard.append((agent.slug, by.username, reason, len(cancelled_runs), cancelled_checkpoints))

    try:
        agent_halt(agent.pk, manager, reason="runaway")
    finally:
        agent_halted.disconnect(dispatch_uid="test-heard")
    for cp in (first, second):
        cp.refresh_from_db()
        assert cp.status == "cancelled"
        assert cp.resolution_reason == "agent halted by max: runaway"
        assert events("checkpoint.cancelled", cp)[0].actor_label == "max"
    assert set(Run.objects.values_list("status", flat=True)) == {"cancelled"}
    (halted,) = events("agent.halted", agent)
    assert halted.data["reason"] == "runaway" and halted.data["cancelled_checkpoints"] == 2
    assert heard == [("bot", "max", "runaway", 2, 2)]
    with pytest.raises(Conflict):
        agent_halt(agent.pk, manager, reason="again")


def test_only_managers_halt_with_a_reason_and_only_superusers_halt_everything(
    agent, reviewer, manager
):
    with pytest.raises(NotAllowed):
        agent_halt(agent.pk, reviewer, reason="x")
    with pytest.raises(InvalidInput):
        agent_halt(agent.pk, manager, reason="  ")
    with pytest.raises(NotAllowed):
        agent_halt_all(manager, reason="x")
    AgentFactory(slug="two")
    root = UserFactory(username="root", is_superuser=True)
    assert sorted(a.slug for a in agent_halt_all(root, reason="breach")) == ["bot", "two"]
    assert Agent.objects.filter(halted_at__isnull=True).count() == 0


def test_resuming_lets_the_agent_act_again(api, manager, agent):
    agent_halt(agent.pk, manager, reason="check")
    assert api.get("runs/").status_code == 423
    agent_resume(agent.pk, manager, note="fixed")
    assert api.get("runs/").status_code == 200
    (resumed,) = events("agent.resumed", agent)
    assert resumed.data["halt_reason"] == "check" and resumed.data["note"] == "fixed"
    with pytest.raises(Conflict):
        agent_resume(agent.pk, manager)


def test_a_hosted_run_stops_mid_way_with_nothing_executed_after_the_halt(
    hosted, start, sandbox, manager
):
    plug = {"tool": "pull_the_plug", "args": {"by": "max", "reason": "stop now"}}
    turns = [
        [{"tool": "note", "args": {"text": "one"}}],
        [plug, {"tool": "note", "args": {"text": "two"}}],
        [{"tool": "note", "args": {"text": "three"}}],
    ]
    agent = hosted(
        "halting",
        "tests.hosted.agents.HaltingLedgerAgent",
        turns=turns,
        ledger=str(sandbox / "ledger.txt"),
    )
    run = start(agent)

    assert run.status == "cancelled" and run.error == "agent halted by max: stop now"
    assert [line.split(" ", 1)[1] for line in ledger_lines(sandbox / "ledger.txt")] == [
        "note one",
        "plug pulled",
    ]
    # Nothing after the halt: no step "two" or "three" was even started.
    assert list(RunStep.objects.filter(run=run).values_list("tool", flat=True)) == [
        "note",
        "pull_the_plug",
    ]
    assert [e.verb for e in events("run.cancelled", run)] == ["run.cancelled"]


def test_a_halted_hosted_agent_starts_nothing(ledger_agent, start, manager, sandbox):
    agent = ledger_agent([[{"tool": "note", "args": {"text": "one"}}]])
    agent_halt(agent.pk, manager, reason="maintenance")
    from core.exceptions import Halted

    with pytest.raises(Halted):
        start(agent)
    assert ledger_lines(sandbox / "ledger.txt") == []


def test_the_agents_page_and_the_dashboard_show_the_halt(client, manager, agent):
    manager.is_superuser = True
    manager.save()
    client.force_login(manager)
    page = client.get(f"/admin/agents/agent/{agent.pk}/change/").content.decode()
    assert 'id="halt-agent"' in page
    response = client.post(f"/admin/agents/agent/{agent.pk}/halt/", {"reason": "smoke"})
    assert response.status_code == 302
    page = client.get(f"/admin/agents/agent/{agent.pk}/change/").content.decode()
    assert 'id="halted-banner"' in page and "smoke" in page and 'id="resume-agent"' in page
    home = client.get("/admin/").content.decode()
    assert 'id="halted-agents"' in home and "smoke" in home
    client.post(f"/admin/agents/agent/{agent.pk}/resume/")
    agent.refresh_from_db()
    assert agent.halted_at is None


def test_a_reviewer_cannot_press_the_switch(client, reviewer, agent):
    client.force_login(reviewer)
    response = client.post(f"/admin/agents/agent/{agent.pk}/halt/", {"reason": "x"})
    assert response.status_code == 403
    agent.refresh_from_db()
    assert agent.halted_at is None


def test_the_halt_all_button_is_a_superusers_and_stops_every_agent(
    client, manager, agent, request_cp
):
    other = AgentFactory(slug="two")
    pending = request_cp()
    client.force_login(manager)
    assert 'id="halt-all"' not in client.get("/admin/").content.decode()
    assert client.post("/admin/agents/agent/halt-all/", {"reason": "breach"}).status_code == 403
    assert Agent.objects.filter(halted_at__isnull=False).count() == 0

    root = UserFactory(username="root", is_superuser=True)
    client.force_login(root)
    assert 'id="halt-all"' in client.get("/admin/").content.decode()
    # No reason: nothing is halted, the page says why.
    response = client.post("/admin/agents/agent/halt-all/", {"reason": " "}, follow=True)
    assert "Say why the agent is halted" in response.content.decode()
    assert Agent.objects.filter(halted_at__isnull=False).count() == 0

    response = client.post("/admin/agents/agent/halt-all/", {"reason": "credential breach"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    for a in (agent, other):
        a.refresh_from_db()
        assert (a.halted_by, a.halt_reason) == (root, "credential breach")
        (halted,) = events("agent.halted", a)
        assert halted.actor_label == "root"
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    home = client.get("/admin/").content.decode()
    assert 'id="halted-agents"' in home and "Halted 2 agent(s)." in home
    # Pressed again: nothing left to halt, nothing audited twice.
    client.post("/admin/agents/agent/halt-all/", {"reason": "again"})
    assert len(events("agent.halted")) == 2
