"""Agent-supplied content that once broke pages, and admin pages that must not bypass the
state machine or the audit trail."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from agents.models import AgentKey, Run
from agents.services import AGENT_KEYS
from approvals.artifacts import ArtifactInput
from approvals.models import Artifact, UserToken
from approvals.services import USER_TOKENS, user_token_create
from audit.events import Actor
from audit.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_it_renders_a_review_page_with_absurdly_nested_json(client_for, reviewer, make_checkpoint):
    deep = "[" * 50_000 + "]" * 50_000
    cp = make_checkpoint(artifacts=[ArtifactInput(name="deep.json", kind="json", content=deep)])
    page = client_for(reviewer).get(f"/admin/approvals/checkpoint/{cp.pk}/review/")
    assert page.status_code == 200
    assert "nested too deeply" in page.content.decode()


def test_it_downloads_artifacts_with_hostile_names_and_types(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint(
        artifacts=[ArtifactInput(name="b.txt", content="hi", content_type="text/plain\rX: 1")]
    )
    artifact = Artifact.objects.get(checkpoint=cp)
    # Names are single lines since issue 18 (refused when asked); a row stored before may not be.
    Artifact.objects.filter(pk=artifact.pk).update(name='a\r\nSet-Cookie: x=1; "b.txt')
    response = client_for(reviewer).get(
        f"/admin/approvals/checkpoint/{cp.pk}/artifacts/{artifact.pk}/"
    )
    assert response.status_code == 200
    assert (
        "\r" not in response["Content-Disposition"] and "\n" not in response["Content-Disposition"]
    )
    assert response["Content-Type"].startswith("application/octet-stream")
    assert not response.cookies.get("x")


def test_export_refuses_unknown_filters(client_for, manager):
    response = client_for(manager).get("/admin/approvals/checkpoint/export.csv?bogus=1")
    assert response.status_code == 400


def test_run_pages_are_read_only(client_for, make_checkpoint):
    admin = UserFactory(username="root", is_superuser=True)
    cp = make_checkpoint()
    c = client_for(admin)
    page = c.get(f"/admin/agents/run/{cp.run_id}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    c.post(f"/admin/agents/run/{cp.run_id}/change/", {"status": "completed", "task": "x"})
    assert Run.objects.get(pk=cp.run_id).status == "waiting"
    # The list still cancels, through the transition (audited).
    c.post(
        "/admin/agents/run/",
        {"action": "cancel_runs", "_selected_action": [str(cp.run_id)]},
    )
    assert Run.objects.get(pk=cp.run_id).status == "cancelled"
    assert AuditEvent.objects.filter(verb="run.cancelled", target_id=str(cp.run_id)).exists()


def test_keys_and_tokens_are_revoked_by_audited_actions_only(client_for, agent, reviewer):
    admin = UserFactory(username="root", is_superuser=True)
    key = AGENT_KEYS.create(agent, Actor.system())
    token = user_token_create(reviewer, scope="decide")
    c = client_for(admin)
    c.post("/admin/agents/agent/", {"action": "revoke_keys", "_selected_action": [agent.pk]})
    assert AGENT_KEYS.authenticate(key) is None
    assert AgentKey.objects.get(agent=agent).revoked_at is not None
    row = UserToken.objects.get(user=reviewer)
    c.post("/admin/approvals/usertoken/", {"action": "revoke_tokens", "_selected_action": [row.pk]})
    assert USER_TOKENS.authenticate(token) is None
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert {"agent.key_revoked", "user.token_revoked"} <= verbs
    # The change form offers no way to clear the revocation.
    page = c.get(f"/admin/approvals/usertoken/{row.pk}/change/").content.decode()
    assert 'name="revoked_at' not in page


def test_managers_only_pages_stay_closed_to_holders_of_change_permissions(client_for, reviewer):
    reviewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_webhookdelivery", "change_auditevent"])
    )
    c = client_for(reviewer)
    assert c.get("/admin/agents/webhookdelivery/").status_code == 403
    assert c.get("/admin/audit/auditevent/").status_code == 403
