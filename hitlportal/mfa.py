"""HITL_REQUIRE_MFA: a signed-in staff user without TOTP can do nothing but enrol it."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from api.errors import is_api, problem_response
from hitlportal.auth import has_totp, mfa_required_for

# Paths a user without TOTP may still reach: the account pages (to enrol, or to log out),
# static files and the health check.
_EXEMPT_PREFIXES = ("/accounts/", "/static/", "/api/v1/health/")


class RequireMFAMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.HITL_REQUIRE_MFA and self._must_enrol(request):
            if is_api(request):
                return problem_response(
                    403,
                    "Two-factor authentication must be set up before using the portal "
                    "(HITL_REQUIRE_MFA).",
                    "mfa_required",
                )
            messages.warning(
                request,
                "This portal requires two-factor authentication. Set up an authenticator app "
                "to continue.",
            )
            return redirect(f"{reverse('mfa_activate_totp')}?next={request.get_full_path()}")
        return self.get_response(request)

    def _must_enrol(self, request: HttpRequest) -> bool:
        user = getattr(request, "user", None)
        if not mfa_required_for(user):
            return False
        if request.path.startswith(_EXEMPT_PREFIXES):
            return False
        # One indexed EXISTS per request, not cached in the session: an administrator who
        # removes a lost authenticator must take effect at once.
        return not has_totp(user)
