"""Your API tokens (/admin/tokens/): a person mints, lists and revokes their own personal
tokens. A token is shown once; where the account has two-factor authentication, it can only
be minted from a session that passed it, and it remembers when (what lets it decide where
MFA is required)."""

from __future__ import annotations

import datetime as dt

from allauth.mfa.models import Authenticator
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from approvals.credentials import mfa_enabled, session_mfa_at
from approvals.models import UserToken
from approvals.services import USER_TOKENS, user_token_create
from audit.events import Actor
from core.exceptions import InvalidInput


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. “laptop CLI”.")
    scope = forms.ChoiceField(
        choices=UserToken.Scope.choices,
        initial=UserToken.Scope.READ,
        widget=forms.RadioSelect,
        help_text="Read: your queue and what you may see. Read and decide: also approve, "
        "reject, edit and answer. Critical requests too: with two-factor authentication, "
        "a token decides critical requests only with this scope (minted right after a fresh "
        "confirmation).",
    )
    days = forms.IntegerField(min_value=1, max_value=3650, label="Expires after (days)")


def _needs_fresh_mfa(request: HttpRequest) -> bool:
    """An account with an authenticator (or a portal that requires one) mints tokens only
    from a session that passed it."""
    has_totp = Authenticator.objects.filter(
        user_id=request.user.pk, type=Authenticator.Type.TOTP
    ).exists()
    return (settings.HITL_REQUIRE_MFA or has_totp) and session_mfa_at(request) is None


def _needs_step_up(request: HttpRequest, scope: str) -> bool:
    """The "decide critical" scope is step-up in a token: minted within the step-up window
    of a second factor (where the account has MFA)."""
    if scope != UserToken.Scope.DECIDE_CRITICAL or not mfa_enabled(request.user):
        return False
    at = session_mfa_at(request)
    fresh = dt.timedelta(seconds=settings.HITL_STEP_UP_SECONDS)
    return at is None or timezone.now() - at > fresh


def tokens(admin_site, request: HttpRequest) -> HttpResponse:
    form = TokenForm(initial={"days": settings.HITL_TOKEN_DAYS})
    plaintext = ""
    if request.method == "POST":
        form = TokenForm(request.POST)
        if _needs_fresh_mfa(request):
            form.add_error(
                None,
                "Sign in again with your authenticator app, then mint the token: tokens are "
                "only minted from a login that passed two-factor authentication.",
            )
        elif form.is_valid() and _needs_step_up(request, form.cleaned_data["scope"]):
            form.add_error(
                "scope",
                "A token that decides critical requests is minted right after a fresh "
                "confirmation with your authenticator: confirm, then mint it.",
            )
        elif form.is_valid():
            try:
                plaintext = user_token_create(
                    request.user,
                    actor=Actor.for_user(request.user),
                    name=form.cleaned_data["name"],
                    scope=form.cleaned_data["scope"],
                    days=form.cleaned_data["days"],
                    mfa_verified_at=session_mfa_at(request),
                )
            except InvalidInput as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                form = TokenForm(initial={"days": settings.HITL_TOKEN_DAYS})
    context = {
        **admin_site.each_context(request),
        "title": "Your API tokens",
        "form": form,
        "plaintext": plaintext,
        "now": timezone.now(),
        "tokens": UserToken.objects.filter(user=request.user).order_by("-created_at"),
        "require_mfa": settings.HITL_REQUIRE_MFA,
    }
    # The page may show a token's plaintext, once: never from a cache.
    return TemplateResponse(request, "admin/hitl_tokens.html", context)


def revoke(admin_site, request: HttpRequest, token_id: int) -> HttpResponse:
    token = UserToken.objects.filter(pk=token_id, user=request.user).first()
    if token is None:
        raise Http404("No such token of yours")
    if USER_TOKENS.revoke(token, Actor.for_user(request.user)):
        messages.success(request, f"Revoked “{token.name or token.prefix}”.")
    return HttpResponseRedirect(reverse("admin:hitl_tokens"))
