"""Every change of authority made in the admin is validated and audited with its old and new
values: policies (the form and the list's editable columns), agents, people, roles. Secrets
are encrypted at rest and shown once."""

from __future__ import annotations

import io

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection

from agents.models import Agent
from approvals.models import Policy, UserToken
from approvals.services import user_token_create
from audit.models import AuditEvent
from core import crypto
from tests.factories import AgentFactory, PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db


def event(verb: str) -> AuditEvent:
    return AuditEvent.objects.filter(verb=verb).latest("seq")


def policy_form(policy: Policy, **changes) -> dict:
    data = {
        "name": policy.name,
        "description": policy.description,
        "active": "on" if policy.active else "",
        "priority": policy.priority,
        "match_agent": policy.match_agent,
        "match_tool": policy.match_tool,
        "match_kind": policy.match_kind,
        "min_risk": policy.min_risk,
        "stages": '[{"role": "ops", "approvals": 1}]',
        "honour_role_hints": "on",
        "timeout_seconds": "",
        "expiry_action": policy.expiry_action,
        "escalation_role": policy.escalation_role,
        "escalation_timeout_seconds": policy.escalation_timeout_seconds,
        "sla_seconds": "",
        "outcome": policy.outcome,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != "" or k in ("stages",)}


@pytest.mark.parametrize(
    ("stages", "error"),
    [
        ('[{"role": "nobody", "approvals": 1}]', "not a review role"),
        ('[{"role": "managers", "approvals": 1}]', "not a review role"),
        ('[{"role": "ops", "approvals": "two"}]', "whole number"),
        ('[{"role": "ops", "approvals": 0}]', "whole number"),
        ('[{"rol": "ops"}]', "nothing else"),
        ("[]", "non-empty list"),
        ('{"role": "ops"}', "non-empty list"),
    ],
)
def test_a_policy_with_unusable_stages_is_a_field_error_not_a_later_500(
    admin_client, reviewer, stages, error
):
    UserFactory(username="max", roles=["managers"])
    policy = PolicyFactory(name="p")
    response = admin_client.post(
        f"/admin/approvals/policy/{policy.pk}/change/", policy_form(policy, stages=stages)
    )
    assert response.status_code == 200
    assert error in response.content.decode()
    policy.refresh_from_db()
    assert policy.stages == [{"role": "ops", "approvals": 1}]
    assert not AuditEvent.objects.filter(verb="policy.updated").exists()


def test_policy_edits_are_audited_with_their_diff(admin_client, reviewer):
    policy = PolicyFactory(name="p", timeout_seconds=600)
    response = admin_client.post(
        f"/admin/approvals/policy/{policy.pk}/change/",
        policy_form(policy, timeout_seconds="900", match_tool="delete_*"),
    )
    assert response.status_code == 302
    changes = event("policy.updated").data["changes"]
    assert changes["timeout_seconds"] == [600, 900]
    assert changes["match_tool"] == ["", "delete_*"]
    assert event("policy.updated").actor_label == "admin"


def test_the_lists_editable_columns_are_audited_too(admin_client, reviewer):
    policy = PolicyFactory(name="p", priority=100, active=True)
    response = admin_client.post(
        "/admin/approvals/policy/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(policy.pk),
            "form-0-priority": "5",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.active, policy.priority) == (False, 5)
    assert event("policy.updated").data["changes"] == {
        "active": [True, False],
        "priority": [100, 5],
    }


def test_agent_edits_are_audited_owner_callback_and_active(admin_client, reviewer):
    agent = AgentFactory(slug="bot", name="Bot", callback_url="https://a.example/hook")
    response = admin_client.post(
        f"/admin/agents/agent/{agent.pk}/change/",
        {
            "name": "Bot",
            "slug": "bot",
            "description": "",
            "kind": "external",
            "runtime": "",
            "callback_url": "https://b.example/hook",
            "owner": str(reviewer.pk),
            "config": "{}",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    changes = event("agent.updated").data["changes"]
    assert changes["owner"] == [None, "rita"]
    assert changes["callback_url"] == ["https://a.example/hook", "https://b.example/hook"]
    assert changes["active"] == [True, False]
    assert "webhook_secret" not in str(event("agent.updated").data)


def test_a_persons_roles_and_staff_status_changes_are_audited(admin_client, reviewer):
    dba = Group.objects.get_or_create(name="dba")[0]
    response = admin_client.post(
        f"/admin/auth/user/{reviewer.pk}/change/",
        {
            "username": "rita",
            "email": "rita@example.com",
            "is_active": "on",
            "groups": [str(dba.pk)],
            "last_login_0": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    changes = event("user.updated").data["changes"]
    assert changes["groups"] == [["ops"], ["dba"]]
    assert changes["is_staff"] == [True, False]


def test_granting_the_decide_permission_to_a_role_is_audited(admin_client):
    group = Group.objects.create(name="security")
    decide = Permission.objects.get(codename="decide_checkpoint")
    response = admin_client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": "security", "permissions": [str(decide.pk)]},
    )
    assert response.status_code == 302
    assert event("group.updated").data["changes"]["permissions"][1] == [str(decide)]


def test_a_personal_token_is_revoked_audited_never_deleted(admin_client, reviewer):
    user_token_create(reviewer, scope="decide")
    token = UserToken.objects.get(user=reviewer)
    assert admin_client.get(f"/admin/approvals/usertoken/{token.pk}/delete/").status_code == 403
    response = admin_client.post(
        "/admin/approvals/usertoken/",
        {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"},
    )
    assert UserToken.objects.filter(pk=token.pk).exists()
    response = admin_client.post(
        "/admin/approvals/usertoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and event("user.token_revoked").actor_label == "admin"


# --- secrets at rest ------------------------------------------------------------------------------


def raw(sql: str, params=()) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_webhook_secrets_are_encrypted_at_rest():
    agent = AgentFactory(slug="bot")
    ((stored,),) = raw("SELECT webhook_secret FROM agents_agent WHERE id = %s", [agent.pk])
    assert agent.webhook_secret.startswith("whsec_")
    assert agent.webhook_secret not in stored and stored.startswith("gAAAA")
    assert Agent.objects.get(pk=agent.pk).webhook_secret == agent.webhook_secret


def test_totp_secrets_are_encrypted_at_rest(reviewer):
    secret = generate_totp_secret()
    TOTP.activate(reviewer, secret)
    ((data,),) = raw("SELECT data FROM mfa_authenticator WHERE type = 'totp'")
    assert secret not in str(data)
    authenticator = Authenticator.objects.get(type="totp")
    assert TOTP(authenticator).instance.data["secret"] != secret
    assert crypto.decrypt(authenticator.data["secret"]) == secret


def test_recovery_code_seeds_are_encrypted_at_rest(reviewer):
    codes = RecoveryCodes.activate(reviewer)
    ((data,),) = raw("SELECT data FROM mfa_authenticator WHERE type = 'recovery_codes'")
    seed = crypto.decrypt(Authenticator.objects.get(type="recovery_codes").data["seed"])
    assert seed and seed not in str(data) and "gAAAA" in str(data)
    # the codes still work: derived from the decrypted seed
    first = codes.get_unused_codes()[0]
    assert RecoveryCodes(Authenticator.objects.get(type="recovery_codes")).validate_code(first)


def test_rotating_the_key_re_encrypts_every_secret(settings, reviewer):
    agent = AgentFactory(slug="bot")
    secret = generate_totp_secret()
    TOTP.activate(reviewer, secret)
    new = Fernet.generate_key().decode()
    settings.HITL_ENCRYPTION_KEYS = [new, *settings.HITL_ENCRYPTION_KEYS]
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "Re-encrypted 2 secret(s)" in out.getvalue()
    settings.HITL_ENCRYPTION_KEYS = [new]  # the old key is dropped
    assert Agent.objects.get(pk=agent.pk).webhook_secret == agent.webhook_secret
    assert crypto.decrypt(Authenticator.objects.get(type="totp").data["secret"]) == secret


def test_rotating_a_webhook_secret_shows_the_new_one_once_and_audits_it(admin_client):
    agent = AgentFactory(slug="bot")
    old = agent.webhook_secret
    response = admin_client.post(
        "/admin/agents/agent/",
        {"action": "rotate_webhook_secrets", "_selected_action": [str(agent.pk)]},
    )
    agent.refresh_from_db()
    assert agent.webhook_secret != old and agent.webhook_secret in response.content.decode()
    assert event("agent.webhook_secret_rotated").target_id == str(agent.pk)
    page = admin_client.get(f"/admin/agents/agent/{agent.pk}/change/").content.decode()
    assert agent.webhook_secret not in page
