"""Who may decide: deciding is a permission (review roles), only active staff decide, managers
never do, and where MFA is required the deciding credential must come from an MFA-verified
login. Personal tokens are scoped, expire, and are minted by their owner after MFA."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client
from django.utils import timezone

from approvals.models import Decision, UserToken
from approvals.services import user_token_create
from audit.models import AuditEvent
from tests.api.conftest import Api
from tests.factories import PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db


def decide(token: str, cp, outcome="approve", **body):
    return Api(token).post(f"checkpoints/{cp.pk}/decision/", {"outcome": outcome, **body})


def mfa_session(user, *, mfa: bool) -> Client:
    """A logged-in browser session; `mfa`: its login passed a second factor (what allauth
    records in the session when the TOTP code was entered)."""
    c = Client(HTTP_HOST="127.0.0.1")
    c.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = c.session
    records = [{"method": "password", "at": time.time()}]
    if mfa:
        records.append({"method": "mfa", "at": time.time(), "type": "totp"})
    session[AUTHENTICATION_METHODS_SESSION_KEY] = records
    session["account_authentication_methods_user"] = str(user.pk)
    session.save()
    return c


# --- review roles -------------------------------------------------------------------------------


def test_managers_never_decide_even_where_a_stage_names_their_group(make_checkpoint, manager):
    # A policy written before review roles existed (factories skip validation).
    PolicyFactory(stages=[{"role": "managers", "approvals": 1}])
    cp = make_checkpoint()
    response = decide(user_token_create(manager, scope="decide"), cp)
    assert response.status_code == 403
    assert not Decision.objects.exists()
    cp.refresh_from_db()
    assert cp.status == "pending"


def test_a_group_without_the_decide_permission_is_no_review_role(make_checkpoint):
    PolicyFactory(stages=[{"role": "auditors", "approvals": 1}])
    auditor = UserFactory(username="aud", roles=[])
    from tests.factories import GroupFactory

    auditor.groups.add(GroupFactory(name="auditors", review_role=False))
    cp = make_checkpoint()
    assert decide(user_token_create(auditor, scope="decide"), cp).status_code == 403
    assert not Decision.objects.exists()


def test_non_staff_role_members_do_not_decide(make_checkpoint):
    outsider = UserFactory(username="outsider", roles=["ops"], is_staff=False)
    cp = make_checkpoint()
    response = decide(user_token_create(outsider, scope="decide"), cp)
    assert response.status_code == 403
    assert "not a reviewer" in response.json()["detail"]
    assert not Decision.objects.exists()


# --- token scopes and expiry --------------------------------------------------------------------


def test_a_read_token_reads_but_does_not_decide(make_checkpoint, reviewer):
    cp = make_checkpoint()
    token = user_token_create(reviewer)  # read is the default
    assert Api(token).get("queue/").json()["results"][0]["id"] == str(cp.pk)
    response = decide(token, cp)
    assert response.status_code == 403 and "decide scope" in response.json()["detail"]
    assert not Decision.objects.exists()
    assert decide(user_token_create(reviewer, scope="decide"), cp).status_code == 200
    assert Decision.objects.get().channel == "api"


def test_an_expired_token_is_refused(reviewer):
    token = user_token_create(reviewer, days=1)
    UserToken.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert Api(token).get("queue/").status_code == 401


def test_token_creation_is_audited_with_its_scope_and_expiry(reviewer):
    user_token_create(reviewer, scope="decide", days=7)
    event = AuditEvent.objects.get(verb="user.token_created")
    assert event.data["scope"] == "decide" and event.data["expires_at"]
    assert event.data["mfa_verified_at"] is None


# --- MFA ------------------------------------------------------------------------------------------


@pytest.fixture
def require_mfa(settings):
    settings.HITL_REQUIRE_MFA = True


def test_with_mfa_required_a_token_minted_without_mfa_does_not_decide(
    require_mfa, make_checkpoint, reviewer
):
    TOTP.activate(reviewer, generate_totp_secret())
    cp = make_checkpoint()
    response = decide(user_token_create(reviewer, scope="decide"), cp)
    assert response.status_code == 403 and "two-factor" in response.json()["detail"]
    assert not Decision.objects.exists()
    minted_after_mfa = user_token_create(reviewer, scope="decide", mfa_verified_at=timezone.now())
    assert decide(minted_after_mfa, cp).status_code == 200


def test_with_mfa_required_a_session_decides_only_after_its_second_factor(
    require_mfa, make_checkpoint, reviewer
):
    TOTP.activate(reviewer, generate_totp_secret())
    cp = make_checkpoint()
    url = f"/admin/approvals/checkpoint/{cp.pk}/decide/"
    refused = mfa_session(reviewer, mfa=False).post(url, {"outcome": "approve"})
    assert refused.status_code == 403 and "two-factor" in refused.content.decode()
    assert not Decision.objects.exists()
    accepted = mfa_session(reviewer, mfa=True).post(url, {"outcome": "approve"})
    assert accepted.status_code == 302
    assert Decision.objects.get().reviewer == reviewer


# --- the token page ---------------------------------------------------------------------------


def test_a_person_mints_lists_and_revokes_their_own_tokens(reviewer, reviewer2):
    c = mfa_session(reviewer, mfa=False)
    page = c.post("/admin/tokens/", {"name": "laptop", "scope": "decide", "days": "30"})
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    token = UserToken.objects.get(user=reviewer)
    html = page.content.decode()
    plaintext = html.split('value="hitl_')[1].split('"')[0]
    assert plaintext.startswith(token.prefix + "_")
    assert (token.scope, token.name) == ("decide", "laptop")
    assert 29 <= (token.expires_at - timezone.now()).days <= 30
    assert "hitl_" + plaintext not in c.get("/admin/tokens/").content.decode()  # shown once
    # someone else's token is not theirs to revoke
    other = UserToken.objects.get(pk=UserToken.objects.create(user=reviewer2, prefix="x1").pk)
    assert c.post(f"/admin/tokens/{other.pk}/revoke/").status_code == 404
    assert c.post(f"/admin/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(verb="user.token_revoked", actor_label="rita").count() == 1
    assert Api("hitl_" + plaintext).get("queue/").status_code == 401


def test_an_account_with_an_authenticator_mints_tokens_only_after_mfa(reviewer):
    TOTP.activate(reviewer, generate_totp_secret())
    body = {"name": "ci", "scope": "read", "days": "10"}
    refused = mfa_session(reviewer, mfa=False).post("/admin/tokens/", body)
    assert "Sign in again with your authenticator" in refused.content.decode()
    assert not UserToken.objects.exists()
    mfa_session(reviewer, mfa=True).post("/admin/tokens/", body)
    assert UserToken.objects.get().mfa_verified_at is not None
