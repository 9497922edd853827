"""/admin/oversight/…: mounted by `HitlAdminSite.get_urls` through `core.admin.page` (login,
staff, the methods), each view checking for a manager itself (`managers_only`: 404 for anyone
else)."""

from __future__ import annotations

from functools import partial

from django.contrib.admin import AdminSite
from django.urls import URLPattern, path

from core.admin_pages import page
from oversight import views


def urlpatterns(site: AdminSite) -> list[URLPattern]:
    v = partial(page, site)
    return [
        path("oversight/", v(views.dashboard), name="oversight_dashboard"),
        path("oversight/reviewers/", v(views.reviewers), name="oversight_reviewers"),
        path("oversight/drills/", v(views.drill_list), name="oversight_drills"),
        path("oversight/drills/new/", v(views.drill_new), name="oversight_drill_new"),
        path("oversight/drills/<int:pk>/", v(views.drill_detail), name="oversight_drill"),
        path(
            "oversight/drills/<int:pk>/withdraw/",
            v(views.drill_withdraw),
            name="oversight_drill_withdraw",
        ),
        path("oversight/audit/", v(views.audit_explorer), name="oversight_audit"),
        path("oversight/audit/verify/", v(views.audit_verify), name="oversight_audit_verify"),
        path(
            "oversight/checkpoints/<uuid:pk>/",
            v(views.checkpoint_timeline),
            name="oversight_timeline",
        ),
        path(
            "oversight/export/audit.<str:fmt>",
            v(views.export_audit),
            name="oversight_export_audit",
        ),
        path(
            "oversight/export/checkpoints.<str:fmt>",
            v(views.export_checkpoints),
            name="oversight_export_checkpoints",
        ),
        path(
            "oversight/export/decisions.<str:fmt>",
            v(views.export_decisions),
            name="oversight_export_decisions",
        ),
        path("oversight/export/edits.jsonl", v(views.export_edits), name="oversight_export_edits"),
        path(
            "oversight/export/evidence.zip",
            v(views.export_evidence),
            name="oversight_export_evidence",
        ),
    ]
