"""django-allauth adapters: who may sign up (nobody, except optionally through SSO) and
whether a TOTP authenticator may be removed (not while MFA is required)."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from core import crypto
from core.clientip import client_ip


def record_enrolment_as_mfa(sender, request, user, authenticator, **kwargs) -> None:
    """Enrolling TOTP proves a code from the authenticator in this very session: count it as
    this login's second factor (deciding where MFA is required needs one), instead of
    making the reviewer log out and in again."""
    if request is not None and authenticator.type == Authenticator.Type.TOTP:
        from allauth.account.internal.flows.login import record_authentication

        record_authentication(request, user, "mfa", type="totp", reason="enrolled")


def mfa_required_for(user) -> bool:
    """Staff users (everyone who can open the portal) need TOTP when HITL_REQUIRE_MFA is on."""
    return bool(settings.HITL_REQUIRE_MFA and user and user.is_authenticated and user.is_staff)


def has_totp(user) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.TOTP).exists()


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Reviewers are created by an administrator, who also gives them their roles.
        return False

    def get_client_ip(self, request: HttpRequest) -> str:
        # Rate limits count per client (core.clientip: the peer, or behind a trusted proxy
        # the address it saw), not per proxy: one client's failures lock out only itself.
        ip = client_ip(request.META)
        if not ip:
            raise PermissionDenied("Unable to determine the client's IP address")
        return ip


class MFAAdapter(DefaultMFAAdapter):
    # TOTP secrets and recovery-code seeds are encrypted at rest (core.crypto).
    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text)

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        if authenticator.type == Authenticator.Type.TOTP and mfa_required_for(authenticator.user):
            return False
        return super().can_delete_authenticator(authenticator)


try:  # socialaccount is only installed when OIDC is configured
    from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
except ImportError:  # pragma: no cover
    DefaultSocialAccountAdapter = object  # type: ignore[assignment,misc]


class SocialAccountAdapter(DefaultSocialAccountAdapter):  # type: ignore[misc,valid-type]
    def is_open_for_signup(self, request: HttpRequest, sociallogin) -> bool:
        # By default SSO only logs in accounts that already exist (matched by verified email).
        return settings.HITL_OIDC_SIGNUP
