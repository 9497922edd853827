"""Login through django-allauth: password, TOTP MFA (required for staff when
HITL_REQUIRE_MFA is on), rate limiting, logout, password change, no public signup."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from tests.factories import UserFactory

PASSWORD = "pw-for-tests"


def totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))


@pytest.fixture(autouse=True)
def _clear_rate_limits(db):
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def browser() -> Client:
    return Client(HTTP_HOST="127.0.0.1")


def login(c: Client, username: str, password: str = PASSWORD):
    return c.post("/accounts/login/", {"login": username, "password": password})


def test_it_sends_the_admin_login_to_allauth(browser):
    resp = browser.get("/admin/")
    assert resp.status_code == 302 and resp["Location"].startswith("/admin/login/")
    resp = browser.get(resp["Location"])
    assert resp.status_code == 302 and resp["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    page = browser.get(resp["Location"])
    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content


def test_it_logs_in_with_username_or_email(browser, reviewer):
    resp = login(browser, "rita")
    assert resp.status_code == 302 and resp["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200
    other = Client(HTTP_HOST="127.0.0.1")
    assert login(other, "rita@example.com").status_code == 302


def test_it_rejects_wrong_passwords_and_rate_limits(browser, reviewer):
    resp = login(browser, "rita", "nope")
    assert resp.status_code == 200 and b"not correct" in resp.content
    for _ in range(6):
        login(browser, "rita", "nope")
    blocked = login(browser, "rita")  # even the right password, for now
    assert blocked.status_code in (200, 429)
    assert browser.get("/admin/").status_code == 302


def test_it_asks_for_a_totp_code_when_the_user_has_one(browser, reviewer):
    secret = generate_totp_secret()
    TOTP.activate(reviewer, secret)
    RecoveryCodes.activate(reviewer)
    resp = login(browser, "rita")
    assert resp.status_code == 302 and resp["Location"] == "/accounts/2fa/authenticate/"
    assert browser.get("/admin/").status_code == 302  # not in yet
    bad = browser.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert bad.status_code == 200 and b"Incorrect code" in bad.content
    ok = browser.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert ok.status_code == 302
    assert browser.get("/admin/").status_code == 200


def test_it_accepts_a_recovery_code(browser, reviewer):
    TOTP.activate(reviewer, generate_totp_secret())
    codes = RecoveryCodes.activate(reviewer).get_unused_codes()
    login(browser, "rita")
    assert browser.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 302
    assert browser.get("/admin/").status_code == 200


def test_it_requires_staff_to_enrol_totp_when_mfa_is_required(browser, reviewer, settings):
    settings.HITL_REQUIRE_MFA = True
    assert login(browser, "rita").status_code == 302
    resp = browser.get("/admin/approvals/checkpoint/")
    assert resp.status_code == 302
    assert resp["Location"].startswith("/accounts/2fa/totp/activate/")
    assert browser.get("/api/v1/health/").status_code == 200  # exempt
    # allauth asks for the password again before a security change (re-authentication).
    reauth = browser.get(resp["Location"])
    assert reauth.status_code == 302 and reauth["Location"].startswith("/accounts/reauthenticate/")
    back = browser.post(reauth["Location"], {"password": PASSWORD})
    assert back.status_code == 302
    page = browser.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    done = browser.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert done.status_code == 302
    assert Authenticator.objects.filter(user=reviewer, type="totp").exists()
    assert browser.get("/admin/approvals/checkpoint/").status_code == 200
    # And it cannot be switched off while required.
    resp = browser.post("/accounts/2fa/totp/deactivate/", {})
    assert Authenticator.objects.filter(user=reviewer, type="totp").exists()
    assert resp.status_code in (200, 302)


def test_it_leaves_users_alone_when_mfa_is_not_required(client_for, reviewer, settings):
    settings.HITL_REQUIRE_MFA = False
    assert client_for(reviewer).get("/admin/").status_code == 200


def test_it_forbids_the_admin_to_non_staff(browser):
    UserFactory(username="pat", is_staff=False)
    assert login(browser, "pat").status_code == 302
    assert browser.get("/admin/login/").status_code == 403
    assert browser.get("/admin/approvals/checkpoint/").status_code == 302


def test_it_logs_out_and_changes_passwords(client_for, reviewer):
    c = client_for(reviewer)
    assert c.get("/accounts/password/change/").status_code == 200
    assert c.get("/admin/password_change/")["Location"] == "/accounts/password/change/"
    resp = c.post(
        "/accounts/password/change/",
        {
            "oldpassword": PASSWORD,
            "password1": "a-new-long-pass-42",
            "password2": "a-new-long-pass-42",
        },
    )
    assert resp.status_code == 302
    reviewer.refresh_from_db()
    assert reviewer.check_password("a-new-long-pass-42")
    assert c.post("/accounts/logout/").status_code == 302
    assert c.get("/admin/").status_code == 302


def test_it_has_no_public_signup(browser):
    """Accounts are made by administrators (or SSO): allauth's signup answers that it is
    closed (`AccountAdapter.is_open_for_signup`), and a complete sign-up makes no account."""
    page = browser.get("/accounts/signup/")
    assert page.status_code == 200 and b"Sign Up Closed" in page.content
    form = {"username": "mallory", "email": "mallory@example.com"}
    tried = browser.post(
        "/accounts/signup/",
        {**form, "password1": "a-long-pass-42x", "password2": "a-long-pass-42x"},
    )
    assert tried.status_code == 200 and b"Sign Up Closed" in tried.content
    assert not get_user_model().objects.filter(username="mallory").exists()
