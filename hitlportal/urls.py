from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.urls import include, path, re_path, reverse
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from api.metrics import metrics_view


def audit_admin_moved(request, rest: str):
    """The audit trail's admin pages moved with AuditEvent to the audit app (issue 19): the old
    addresses (bookmarks, links in mail) lead to the new ones."""
    query = request.META.get("QUERY_STRING", "")
    target = reverse("admin:audit_auditevent_changelist") + rest
    return HttpResponsePermanentRedirect(target + (f"?{query}" if query else ""))


urlpatterns = [
    re_path(r"^admin/approvals/auditevent/(?P<rest>.*)$", audit_admin_moved),
    path("admin/", admin.site.urls),
    # Login, logout, password change, TOTP and recovery codes, optional SSO (django-allauth).
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # HumanLayer's REST protocol for unchanged `humanlayer` SDK code (integrations/).
    path("humanlayer/v1/", include("integrations.humanlayer.urls")),
    # Prometheus (bearer token or allow-listed network; 404 when neither is configured).
    path("metrics", metrics_view, name="metrics"),
    # Slack's interactivity (buttons in notifications) and the account link page.
    path("integrations/slack/", include("integrations.slack.urls")),
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
]

# API paths answer errors as problem details; other paths keep Django's pages.
handler400 = "api.errors.handler400"
handler403 = "api.errors.handler403"
handler404 = "api.errors.handler404"
handler500 = "api.errors.handler500"
