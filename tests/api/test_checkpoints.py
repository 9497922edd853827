from __future__ import annotations

import pytest

from agents.models import Run
from approvals.models import Artifact, Checkpoint
from approvals.transitions import checkpoint_decide
from audit.models import AuditEvent
from tests.factories import GroupFactory, PolicyFactory

pytestmark = pytest.mark.django_db


def test_it_creates_a_checkpoint_and_the_run_waits(api, run_id, agent):
    body = {
        "run": run_id,
        "kind": "approval",
        "title": "Delete 2 log files",
        "summary": "They are older than 90 days",
        "action": {
            "tool": "delete_files",
            "args": {"paths": ["/a", "/b"], "force": True, "retries": 2},
        },
        "context": {
            "request": "free disk",
            "reasoning": ["disk 95%", "logs oldest"],
            "ticket": "OPS-1",
        },
        "risk": "high",
        "artifacts": [{"name": "plan.diff", "kind": "diff", "content": "-a\n-b\n"}],
        "expires_in": 600,
    }
    response = api.post("checkpoints/", body)
    assert response.status_code == 201, response.content
    data = response.json()
    cp = Checkpoint.objects.get(pk=data["id"])
    assert (cp.status, cp.agent, str(cp.run_id), cp.risk, cp.current_role) == (
        "pending",
        agent,
        run_id,
        "high",
        "ops",
    )
    assert cp.action["args"] == {"paths": ["/a", "/b"], "force": True, "retries": 2}
    assert cp.context["ticket"] == "OPS-1" and cp.context["reasoning"] == [
        "disk 95%",
        "logs oldest",
    ]
    assert (cp.deadline - cp.created_at).total_seconds() == 600
    assert Run.objects.get(pk=run_id).status == "waiting"
    assert (
        data["status"] == "pending" and data["deadline"] and data["review_url"].startswith("http")
    )
    assert data["routed_to"]["roles"] == ["ops"]
    art = Artifact.objects.get(checkpoint=cp)
    assert (art.inline, art.kind, art.size) == ("-a\n-b\n", "diff", 6)
    assert data["artifacts"][0]["ref"] == f"artifact://{art.id}"
    assert data["artifacts"][0]["content"] == "-a\n-b\n"
    verbs = list(
        AuditEvent.objects.filter(target_id__in=[cp.pk, run_id]).values_list("verb", "actor_label")
    )
    assert ("checkpoint.requested", "bot") in verbs and ("run.waiting", "bot") in verbs


def test_it_routes_by_policy_and_a_hint_only_adds(api, run_id):
    GroupFactory(name="security")  # a review role
    PolicyFactory(name="dba for sql", match_tool="sql_*", stages=[{"role": "dba", "approvals": 2}])
    response = api.post(
        "checkpoints/",
        {
            "run": run_id,
            "title": "drop",
            "action": {"tool": "sql_exec", "args": {}},
            "role_hint": "security",
        },
    )
    routed = response.json()["routed_to"]
    assert routed["roles"] == ["dba", "security"]
    assert routed["current_role"] == "dba" and routed["approvals_needed"] == 2
    assert routed["policy"] == "dba for sql"


@pytest.mark.parametrize("hint", ["nobody-has-this-role", "managers", "plain-group"])
def test_a_hint_that_is_no_review_role_is_refused(api, run_id, hint):
    """An agent cannot make deciders of a group that may not decide (the managers, or any
    group without the decide permission), nor of a name that is no group at all."""
    GroupFactory(name="managers")
    GroupFactory(name="plain-group", review_role=False)
    body = {"run": run_id, "title": "t", "action": {"tool": "t", "args": {}}, "role_hint": hint}
    response = api.post("checkpoints/", body)
    assert response.status_code == 400
    assert "not a review role" in response.json()["errors"]["role_hint"][0]
    assert not Checkpoint.objects.exists()
    assert Run.objects.get(pk=run_id).status == "running"


def test_a_policy_that_does_not_honour_hints_ignores_them(api, run_id):
    GroupFactory(name="security")
    PolicyFactory(
        name="no hints", stages=[{"role": "ops", "approvals": 1}], honour_role_hints=False
    )
    body = {
        "run": run_id,
        "title": "t",
        "action": {"tool": "t", "args": {}},
        "role_hint": "security",
    }
    data = api.post("checkpoints/", body).json()
    assert data["routed_to"]["roles"] == ["ops"]
    event = AuditEvent.objects.get(verb="checkpoint.requested", target_id=data["id"])
    assert "ignored" in event.data["routing"][-1]


def test_it_asks_a_question_with_options(api, run_id):
    response = api.post(
        "checkpoints/",
        {
            "run": run_id,
            "kind": "question",
            "title": "Which region?",
            "options": ["eu", {"value": "us", "label": "US"}],
        },
    )
    assert response.status_code == 201
    cp = Checkpoint.objects.get(pk=response.json()["id"])
    assert cp.kind == "question" and cp.options == ["eu", {"value": "us", "label": "US"}]


@pytest.mark.parametrize(
    "outcome,kwargs,expected",
    [
        ("approve", {}, {"outcome": "approve", "comment": "ok"}),
        ("reject", {}, {"outcome": "reject", "action": None, "comment": "ok"}),
        (
            "modify",
            {"action": {"args": {"paths": ["/x"]}}},
            {"outcome": "modify", "action": {"tool": "delete_files", "args": {"paths": ["/x"]}}},
        ),
    ],
)
def test_it_shows_the_decision(api, ask, reviewer, outcome, kwargs, expected):
    cp = ask()
    checkpoint_decide(cp["id"], reviewer, outcome, comment="ok", **kwargs)
    decision = api.get(f"checkpoints/{cp['id']}/").json()["decision"]
    assert {k: decision[k] for k in expected} == expected
    assert decision["decided_by"] == "rita" and decision["decided_at"]


def test_it_shows_an_expiry_as_the_outcome(api, ask):
    from datetime import timedelta

    from django.utils import timezone

    from approvals.transitions import checkpoint_expire

    cp = ask()
    checkpoint_expire(cp["id"], now=timezone.now() + timedelta(hours=1))
    body = api.get(f"checkpoints/{cp['id']}/").json()
    assert body["status"] == "expired"
    assert body["decision"]["outcome"] == "expired"
    assert "auto-rejected" in body["decision"]["comment"]


def test_it_lists_own_checkpoints_filtered(api, ask, other_api, run_id):
    a, b = ask(title="a"), ask(title="b")
    api.post(f"checkpoints/{a['id']}/cancel/")
    pending = api.get("checkpoints/", status="pending").json()["results"]
    assert [c["id"] for c in pending] == [b["id"]]
    assert len(api.get("checkpoints/", run=run_id).json()["results"]) == 2
    assert other_api.get("checkpoints/").json()["results"] == []
    assert api.get("checkpoints/", run="nope").status_code == 400


def test_it_cancels_a_pending_checkpoint(api, ask):
    cp = ask()
    response = api.post(f"checkpoints/{cp['id']}/cancel/", {"reason": "not needed"})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    row = Checkpoint.objects.get(pk=cp["id"])
    assert (row.status, row.resolution_reason) == ("cancelled", "not needed")
    event = AuditEvent.objects.get(verb="checkpoint.cancelled")
    assert (event.actor_type, event.actor_label) == ("agent", "bot")


def test_it_refuses_to_cancel_a_decided_checkpoint_naming_the_winner(api, ask, reviewer):
    cp = ask()
    checkpoint_decide(cp["id"], reviewer, "approve")
    response = api.post(f"checkpoints/{cp['id']}/cancel/")
    assert response.status_code == 409
    problem = response.json()
    assert (problem["current_status"], problem["winner"]) == ("approved", "rita")
    assert Checkpoint.objects.get(pk=cp["id"]).status == "approved"


def test_it_refuses_a_checkpoint_on_a_finished_or_foreign_run(api, other_api, run_id):
    foreign = other_api.post("checkpoints/", {"run": run_id, "title": "x", "action": {"tool": "t"}})
    assert foreign.status_code == 400 and "run" in foreign.json()["errors"]
    api.post(f"runs/{run_id}/complete/", {"status": "completed"})
    finished = api.post("checkpoints/", {"run": run_id, "title": "x", "action": {"tool": "t"}})
    assert finished.status_code == 409
    assert not Checkpoint.objects.exists()


def test_it_hides_other_agents_checkpoints(ask, other_api, reviewer_api, dba):
    cp = ask()
    assert other_api.get(f"checkpoints/{cp['id']}/").status_code == 404
    assert other_api.post(f"checkpoints/{cp['id']}/cancel/").status_code == 404
    assert Checkpoint.objects.get(pk=cp["id"]).status == "pending"
    # a reviewer of the routed role may read it; reviewers of other roles may not
    assert reviewer_api.get(f"checkpoints/{cp['id']}/").status_code == 200
    from approvals.services import user_token_create
    from tests.api.conftest import Api

    assert (
        Api(user_token_create(dba, scope="decide")).get(f"checkpoints/{cp['id']}/").status_code
        == 404
    )
