from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from agents.models import Agent, Run, RunEvent
from approvals.models import Checkpoint
from approvals.services import user_token_create
from audit.models import AuditEvent
from tests.api.conftest import Api
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_it_starts_a_run(api, agent):
    response = api.post(
        "runs/", {"task": "rotate keys", "external_id": "T-1", "metadata": {"ticket": 7}}
    )
    assert response.status_code == 201
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    assert (run.agent, run.task, run.external_id, run.metadata, run.status) == (
        agent,
        "rotate keys",
        "T-1",
        {"ticket": 7},
        "running",
    )
    assert body["status"] == "running" and body["checkpoints"] == []
    assert response["Location"] == f"/api/v1/runs/{run.id}/"
    event = AuditEvent.objects.get(verb="run.started")
    assert (event.actor_type, event.actor_label, event.target_id) == ("agent", "bot", str(run.id))


def test_it_shows_a_run_with_its_checkpoints(api, ask, run_id):
    cp = ask()
    body = api.get(f"runs/{run_id}/").json()
    assert body["status"] == "waiting"
    assert body["checkpoints"] == [
        {
            "id": cp["id"],
            "status": "pending",
            "title": "Delete old logs",
            "kind": "approval",
            "created_at": cp["created_at"],
        }
    ]


def test_it_lists_only_own_runs_with_a_cursor(api, other_api):
    for i in range(3):
        api.post("runs/", {"task": f"t{i}"})
    other_api.post("runs/", {"task": "theirs"})
    page = api.get("runs/", limit=2).json()
    assert [r["task"] for r in page["results"]] == ["t2", "t1"]
    rest = api.client.get(page["next"]).json()
    assert [r["task"] for r in rest["results"]] == ["t0"]
    assert rest["next"] is None


def test_it_completes_a_run_and_cancels_what_is_pending(api, ask, run_id):
    cp = ask()
    response = api.post(
        f"runs/{run_id}/complete/", {"status": "completed", "result": {"deleted": 0}}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    run = Run.objects.get(pk=run_id)
    assert run.result == {"deleted": 0} and run.finished_at is not None
    assert Checkpoint.objects.get(pk=cp["id"]).status == "cancelled"
    assert AuditEvent.objects.filter(verb="run.completed", target_id=run_id).exists()
    again = api.post(f"runs/{run_id}/complete/", {"status": "failed"})
    assert again.status_code == 409
    assert again.json()["current_status"] == "completed"


def test_it_fails_a_run_keeping_partial_results(api, run_id):
    response = api.post(
        f"runs/{run_id}/complete/",
        {"status": "failed", "error": "disk full", "result": {"done": 3}},
    )
    assert response.status_code == 200
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.error, run.result) == ("failed", "disk full", {"done": 3})
    assert response.json()["result"] == {"done": 3}
    failed = AuditEvent.objects.get(verb="run.failed", target_id=str(run_id))
    assert failed.data == {"error": "disk full", "result": {"done": 3}}


def test_it_refuses_unknown_completion_status(api, run_id):
    response = api.post(f"runs/{run_id}/complete/", {"status": "cancelled"})
    assert response.status_code == 400
    assert "status" in response.json()["errors"]
    assert Run.objects.get(pk=run_id).status == "running"


def test_it_writes_timeline_events(api, run_id, reviewer_api, ask):
    response = api.post(
        f"runs/{run_id}/events/",
        {"kind": "tool_call", "message": "ls /var/log", "data": {"exit": 0}},
    )
    assert response.status_code == 201
    event = RunEvent.objects.get()
    assert (str(event.run_id), event.kind, event.message, event.data) == (
        run_id,
        "tool_call",
        "ls /var/log",
        {"exit": 0},
    )
    listed = api.get(f"runs/{run_id}/events/").json()["results"]
    assert [e["message"] for e in listed] == ["ls /var/log"]
    # a reviewer cannot write an agent's timeline
    assert reviewer_api.post(f"runs/{run_id}/events/", {"message": "x"}).status_code in (403, 404)


def test_it_closes_the_timeline_of_a_finished_run(api, run_id):
    api.post(f"runs/{run_id}/complete/", {"status": "completed"})
    response = api.post(f"runs/{run_id}/events/", {"message": "late"})
    assert response.status_code == 409
    assert not RunEvent.objects.exists()


def test_it_hides_other_agents_runs(api, other_api, run_id):
    assert other_api.get(f"runs/{run_id}/").status_code == 404
    assert other_api.post(f"runs/{run_id}/complete/", {"status": "completed"}).status_code == 404
    assert other_api.post(f"runs/{run_id}/events/", {"message": "x"}).status_code == 404
    assert Run.objects.get(pk=run_id).status == "running"


def test_it_starts_a_hosted_run_with_a_user_token(tmp_path, settings):
    settings.HITL_SANDBOX_ROOTS = [str(tmp_path.resolve())]
    hosted = AgentFactory(
        slug="janitor", kind=Agent.Kind.HOSTED, runtime="agents.builtin.log_janitor.LogJanitor"
    )
    user = UserFactory(username="ursula")
    user.user_permissions.add(Permission.objects.get(codename="add_run"))
    api = Api(user_token_create(user, scope="decide"))
    body = {"agent": "janitor", "task": "tidy", "input": {"path": str(tmp_path)}}
    response = api.post("runs/", body)
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert (run.agent, run.created_by) == (hosted, user)
    assert run.input["path"] == str(tmp_path)
    started = AuditEvent.objects.get(verb="run.started", target_id=str(run.pk))
    assert started.actor_type == "user" and started.actor_label == "ursula"
    assert api.get(f"runs/{run.id}/").status_code == 200


def test_it_refuses_hosted_run_input_outside_the_sandbox(tmp_path, settings):
    settings.HITL_SANDBOX_ROOTS = [str((tmp_path / "sandbox").resolve())]
    AgentFactory(
        slug="janitor", kind=Agent.Kind.HOSTED, runtime="agents.builtin.log_janitor.LogJanitor"
    )
    user = UserFactory(username="ursula")
    user.user_permissions.add(Permission.objects.get(codename="add_run"))
    api = Api(user_token_create(user, scope="decide"))
    response = api.post("runs/", {"agent": "janitor", "task": "tidy", "input": {"path": "/etc"}})
    assert response.status_code == 400, response.content
    assert "input" in response.json()["errors"] or "path" in response.json()["errors"]
    assert not Run.objects.exists()


def test_it_refuses_hosted_runs_without_permission_or_agent(reviewer_api):
    AgentFactory(slug="janitor", kind=Agent.Kind.HOSTED)
    assert reviewer_api.post("runs/", {"agent": "janitor", "task": "x"}).status_code == 403
    missing = reviewer_api.post("runs/", {"task": "x"})
    assert missing.status_code == 400 and "agent" in missing.json()["errors"]
    assert not Run.objects.exists()


def test_it_refuses_a_hosted_run_of_an_external_agent(reviewer):
    reviewer.user_permissions.add(Permission.objects.get(codename="add_run"))
    AgentFactory(slug="ext", kind=Agent.Kind.EXTERNAL)
    api = Api(user_token_create(reviewer, scope="decide"))
    response = api.post("runs/", {"agent": "ext", "task": "x"})
    assert response.status_code == 400
    assert "agent" in response.json()["errors"]
