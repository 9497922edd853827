"""The people's endpoints: the queue and decisions (token or session + CSRF)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from approvals.models import Checkpoint, Decision
from approvals.services import user_token_create
from audit.models import AuditEvent
from tests.api.conftest import Api
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db


def test_it_lists_the_role_filtered_queue(ask, reviewer_api, dba, manager):
    PolicyFactory(name="sql", match_tool="sql", stages=[{"role": "dba", "approvals": 1}])
    mine = ask(title="logs")
    ask(title="sql", action={"tool": "sql", "args": {}})
    titles = [c["title"] for c in reviewer_api.get("queue/").json()["results"]]
    assert titles == ["logs"]
    dba_titles = [
        c["title"]
        for c in Api(user_token_create(dba, scope="decide")).get("queue/").json()["results"]
    ]
    assert dba_titles == ["sql"]
    everything = Api(user_token_create(manager, scope="decide")).get("queue/").json()["results"]
    assert len(everything) == 2
    item = reviewer_api.get("queue/").json()["results"][0]
    assert item["id"] == mine["id"] and item["current_role"] == "ops"
    assert item["claimed_by"] is None and item["review_url"]


def test_it_approves_through_the_transition(ask, reviewer_api, reviewer):
    cp = ask()
    response = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "approve", "comment": "fine"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["resolved"] is True
    assert body["checkpoint"]["decision"]["outcome"] == "approve"
    decision = Decision.objects.get()
    assert (decision.reviewer, decision.outcome, decision.channel, decision.comment) == (
        reviewer,
        "approve",
        "api",
        "fine",
    )
    assert Checkpoint.objects.get(pk=cp["id"]).status == "approved"
    assert AuditEvent.objects.filter(verb="checkpoint.approved", actor_label="rita").exists()


def test_it_modifies_with_json_types_kept(ask, reviewer_api):
    cp = ask()
    response = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/",
        {"outcome": "modify", "action": {"args": {"paths": ["/x"], "dry_run": True, "n": 3}}},
    )
    assert response.status_code == 200
    final = Checkpoint.objects.get(pk=cp["id"]).final_action
    assert final == {"tool": "delete_files", "args": {"paths": ["/x"], "dry_run": True, "n": 3}}


def test_it_needs_a_reason_to_reject(ask, reviewer_api):
    cp = ask()
    response = reviewer_api.post(f"checkpoints/{cp['id']}/decision/", {"outcome": "reject"})
    assert response.status_code == 400
    assert "comment" in response.json()["errors"]
    assert Checkpoint.objects.get(pk=cp["id"]).status == "pending"


def test_it_answers_questions(api, run_id, reviewer_api):
    cp = api.post(
        "checkpoints/",
        {"run": run_id, "kind": "question", "title": "Region?", "options": ["eu", "us"]},
    ).json()
    wrong = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "answer", "answer": "mars"}
    )
    assert wrong.status_code == 400 and "answer" in wrong.json()["errors"]
    right = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "answer", "answer": "eu"}
    )
    assert right.json()["checkpoint"]["decision"]["answer"] == "eu"
    assert Checkpoint.objects.get(pk=cp["id"]).status == "answered"


def test_it_says_who_won_when_already_decided(ask, reviewer_api, reviewer2):
    cp = ask()
    reviewer_api.post(f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"})
    late = Api(user_token_create(reviewer2, scope="decide")).post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "reject", "comment": "no"}
    )
    assert late.status_code == 409
    problem = late.json()
    assert (problem["current_status"], problem["winner"]) == ("approved", "rita")
    assert problem["at"]
    assert Decision.objects.count() == 1
    assert Checkpoint.objects.get(pk=cp["id"]).status == "approved"


def test_it_hides_checkpoints_of_other_roles_and_refuses_managers(ask, dba, manager):
    cp = ask()
    assert (
        Api(user_token_create(dba, scope="decide"))
        .post(f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"})
        .status_code
        == 404
    )
    response = Api(user_token_create(manager, scope="decide")).post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"}
    )
    assert response.status_code == 403
    assert not Decision.objects.exists()


def test_it_enforces_four_eyes(ask, reviewer, agent, reviewer_api):
    agent.owner = reviewer
    agent.save()
    cp = ask()
    response = reviewer_api.post(f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"})
    assert response.status_code == 403
    assert "Four-eyes" in response.json()["detail"]
    assert Checkpoint.objects.get(pk=cp["id"]).status == "pending"


def test_it_accepts_a_session_with_csrf(ask, reviewer):
    cp = ask()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(reviewer)
    url = f"/api/v1/checkpoints/{cp['id']}/decision/"
    no_csrf = client.post(url, {"outcome": "approve"}, format="json")
    assert no_csrf.status_code == 403
    assert Checkpoint.objects.get(pk=cp["id"]).status == "pending"
    from django.middleware.csrf import _get_new_csrf_string

    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    ok = client.post(url, {"outcome": "approve"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200
    assert client.get("/api/v1/queue/").status_code == 200


def test_it_records_the_cli_channel(ask, reviewer_api):
    cp = ask()
    reviewer_api.client.post(
        f"/api/v1/checkpoints/{cp['id']}/decision/",
        {"outcome": "approve"},
        format="json",
        HTTP_USER_AGENT="hitl-cli/0.1.0",
    )
    assert Decision.objects.get().channel == "cli"
