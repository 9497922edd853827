"""Step-up for high risk: with MFA on the account, deciding a high or critical request needs a
second factor within HITL_STEP_UP_SECONDS (allauth's reauthentication), on the review page
and through the API; a token decides critical requests only with the "decide critical" scope,
minted right after such a confirmation."""

from __future__ import annotations

import time

import pytest
from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.core.cache import cache

from approvals.models import Decision, UserToken
from approvals.services import user_token_create
from audit.models import AuditEvent
from tests.api.conftest import Api
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def code(secret: str) -> str:
    cache.clear()  # allauth refuses a code twice in its window; these are new windows
    return format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))


@pytest.fixture
def rita(db):
    user = UserFactory(username="rita", roles=["ops"])
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    user.totp_secret = secret
    return user


def log_in(client, user):
    client.post("/accounts/login/", {"login": user.username, "password": "pw-for-tests"})
    response = client.post("/accounts/2fa/authenticate/", {"code": code(user.totp_secret)})
    assert response.status_code == 302, response.content[:500]


def age_mfa(client, seconds: int) -> None:
    """The controllable clock: this session's second factor happened `seconds` ago."""
    session = client.session
    records = session[AUTHENTICATION_METHODS_SESSION_KEY]
    for record in records:
        record["at"] = time.time() - seconds
    session[AUTHENTICATION_METHODS_SESSION_KEY] = records
    session.save()


def review(cp) -> str:
    return f"/admin/approvals/checkpoint/{cp.pk}/review/"


def decide(client, cp, outcome="approve", **data):
    from core.canonical import action_sha256

    return client.post(
        f"/admin/approvals/checkpoint/{cp.pk}/decide/",
        {"outcome": outcome, "seen_action": action_sha256(cp.action), **data},
    )


def test_the_page_asks_for_a_fresh_second_factor_for_high_risk(client, rita, make_checkpoint):
    high = make_checkpoint(risk="high", title="Drop the old table")
    medium = make_checkpoint(risk="medium", title="Rotate a log")
    log_in(client, rita)
    age_mfa(client, 16 * 60)  # logged in with TOTP 16 minutes ago

    page = client.get(review(high)).content.decode()
    assert "needs a fresh confirmation with your authenticator" in page
    assert "/accounts/2fa/reauthenticate/?next=" in page
    before = AuditEvent.objects.count()
    refused = decide(client, high)
    assert refused.status_code == 403
    assert "fresh two-factor confirmation" in refused.content.decode()
    assert "/accounts/2fa/reauthenticate/" in refused.content.decode()
    high.refresh_from_db()
    assert high.status == "pending" and not Decision.objects.exists()
    assert AuditEvent.objects.count() == before

    # medium risk needs no step-up
    assert "fresh confirmation" not in client.get(review(medium)).content.decode()
    assert decide(client, medium).status_code == 302

    # reauthenticate with the authenticator, back to the page, decide
    back = client.post(
        f"/accounts/2fa/reauthenticate/?next={review(high)}", {"code": code(rita.totp_secret)}
    )
    assert back.status_code == 302 and back["Location"] == review(high)
    assert "fresh confirmation" not in client.get(review(high)).content.decode()
    assert decide(client, high).status_code == 302
    high.refresh_from_db()
    assert high.status == "approved" and high.resolved_by == rita


def test_accounts_without_mfa_decide_high_risk_as_before(client, make_checkpoint):
    raj = UserFactory(username="raj", roles=["ops"])
    cp = make_checkpoint(risk="critical")
    client.force_login(raj)
    assert decide(client, cp).status_code == 302
    cp.refresh_from_db()
    assert cp.status == "approved"


def test_a_token_decides_critical_only_with_the_critical_scope(rita, make_checkpoint):
    from django.utils import timezone

    high, critical = make_checkpoint(risk="high"), make_checkpoint(risk="critical")
    api = Api(user_token_create(rita, scope="decide", mfa_verified_at=timezone.now()))
    assert api.post(f"checkpoints/{high.pk}/decision/", {"outcome": "approve"}).status_code == 200
    refused = api.post(f"checkpoints/{critical.pk}/decision/", {"outcome": "approve"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "step_up_required"
    assert "decide critical" in refused.json()["detail"]
    assert not Decision.objects.filter(checkpoint=critical).exists()

    strong = Api(user_token_create(rita, scope="decide_critical", mfa_verified_at=timezone.now()))
    done = strong.post(f"checkpoints/{critical.pk}/decision/", {"outcome": "approve"})
    assert done.status_code == 200 and done.json()["checkpoint"]["status"] == "approved"


def test_the_critical_scope_is_minted_only_right_after_a_second_factor(client, rita):
    log_in(client, rita)
    age_mfa(client, 20 * 60)
    form = {"name": "laptop", "scope": "decide_critical", "days": "7"}
    page = client.post("/admin/tokens/", form).content.decode()
    assert "fresh confirmation with your authenticator" in page
    assert not UserToken.objects.exists()
    client.post("/accounts/2fa/reauthenticate/", {"code": code(rita.totp_secret)})
    page = client.post("/admin/tokens/", form).content.decode()
    token = UserToken.objects.get()
    assert token.scope == "decide_critical" and token.mfa_verified_at is not None
    assert "copy it now" in page
