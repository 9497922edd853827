"""The portal's AdminSite: the admin *is* the reviewer's workplace. Login goes through
django-allauth (password, TOTP, rate limits, optional SSO); the index is the reviewer's
home with their queue counts."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from approvals import selectors, tokens_page
from approvals.review import queries
from core.admin_pages import page
from core.roles import is_manager, user_roles
from notifications import pages as notification_pages
from notifications.recipients import away_people
from oversight.urls import urlpatterns as oversight_urls


def _away_colleagues(user) -> list:
    """Out-of-office people in the user's roles (every role for managers)."""
    if not user.is_authenticated:
        return []
    people = (
        None
        if is_manager(user)
        else get_user_model()
        .objects.filter(groups__name__in=user_roles(user))
        .values_list("pk", flat=True)
    )
    return list(away_people(people))


class HitlAdminSite(admin.AdminSite):
    site_header = "HITL Portal"
    site_title = "HITL Portal"
    index_title = "Review queue"
    enable_nav_sidebar = False
    index_template = "admin/hitl_index.html"

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """Hand the login to allauth (MFA, rate limits and SSO live there)."""
        if request.user.is_authenticated:
            if not (request.user.is_active and request.user.is_staff):
                raise PermissionDenied("This account has no access to the portal.")
            return HttpResponseRedirect(self._next(request) or reverse("admin:index"))
        query = {REDIRECT_FIELD_NAME: self._next(request) or reverse("admin:index")}
        return HttpResponseRedirect(f"{resolve_url(settings.LOGIN_URL)}?{urlencode(query)}")

    def get_urls(self):
        def mount(view, methods):
            return page(self, view, methods, owner=self)

        return [
            path("tokens/", mount(tokens_page.tokens, ["GET", "HEAD", "POST"]), name="hitl_tokens"),
            path(
                "tokens/<int:token_id>/revoke/",
                mount(tokens_page.revoke, ["POST"]),
                name="hitl_token_revoke",
            ),
            # Managers' pages (dashboard, reviewers, drills, audit explorer, exports).
            *oversight_urls(self),
            path(
                "notifications/",
                mount(notification_pages.preferences, ["GET", "HEAD", "POST"]),
                name="hitl_notifications",
            ),
            path(
                "notifications/chat/<int:link_id>/unlink/",
                mount(notification_pages.unlink, ["POST"]),
                name="hitl_chat_unlink",
            ),
            *super().get_urls(),
        ]

    def password_change(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        return HttpResponseRedirect(reverse("account_change_password"))

    @staticmethod
    def _next(request: HttpRequest) -> str:
        candidate = request.GET.get(REDIRECT_FIELD_NAME, "")
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
        return ""

    def each_context(self, request: HttpRequest) -> dict:
        ctx = super().each_context(request)
        ctx["hitl_require_mfa"] = settings.HITL_REQUIRE_MFA
        ctx["hitl_is_manager"] = is_manager(request.user)
        # Who of the people sharing your roles is out of office (the queue shows it); read
        # only by the pages that show it.
        ctx["away_people"] = SimpleLazyObject(lambda: _away_colleagues(request.user))
        return ctx

    def index(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        user = request.user
        is_reviewer = bool(user.is_superuser or user_roles(user))
        extra = {
            "now": timezone.now(),
            "is_reviewer": is_reviewer,
            "is_manager": is_manager(user),
            "roles": sorted(user_roles(user)),
        }
        if is_manager(user):
            from agents.models import Agent
            from approvals.policies.pages import auto_decision_counts

            extra["halted_agents"] = list(
                Agent.objects.filter(halted_at__isnull=False).select_related("halted_by")
            )
            extra["auto_counts"] = auto_decision_counts(timezone.now() - timezone.timedelta(days=7))
        if is_reviewer:
            extra["queue_counts"] = queries.queue_counts(user)
            extra["queue_top"] = list(selectors.review_queue_for(user)[:8])
            extra["due_soon_minutes"] = settings.HITL_DUE_SOON_SECONDS // 60
        extra.update(extra_context or {})
        return super().index(request, extra)
