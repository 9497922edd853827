"""The queue: the checkpoint changelist's columns and filters. Every column reads only the
row and its select_related agent/claimed_by, so the page costs the same few queries for
any number of rows."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from approvals.models import Checkpoint
from approvals.review.queries import only_pending
from core.roles import is_manager, user_roles


def humanize_seconds(seconds: float) -> str:
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        h, m = divmod(seconds // 60, 60)
        return f"{h}h {m:02d}m" if m else f"{h}h"
    d, h = divmod(seconds // 3600, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def deadline_badge(cp: Checkpoint, now: dt.datetime | None = None) -> str:
    now = now or timezone.now()
    if cp.status != Checkpoint.Status.PENDING:
        return mark_safe('<span class="muted">—</span>')
    left = (cp.deadline - now).total_seconds()
    if left <= 0:
        css, label = "deadline overdue", f"overdue {humanize_seconds(left)}"
    else:
        css = "deadline soon" if left <= settings.HITL_DUE_SOON_SECONDS else "deadline"
        label = humanize_seconds(left)
    return format_html(
        '<span class="{}" data-deadline="{}" title="{}">{}</span>',
        css,
        cp.deadline.isoformat(),
        cp.deadline.strftime("%Y-%m-%d %H:%M:%S %Z"),
        label,
    )


def risk_badge(risk: str, label: str) -> str:
    return format_html('<span class="badge risk-{}">{}</span>', risk, label)


def status_badge(status: str, label: str) -> str:
    return format_html('<span class="badge status-{}">{}</span>', status, label)


class StatusFilter(admin.SimpleListFilter):
    """Pending by default: the queue is what still needs a human."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("all", "All"), *Checkpoint.Status.choices]

    def choices(self, changelist):
        value = self.value() or Checkpoint.Status.PENDING
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or Checkpoint.Status.PENDING
        if value == Checkpoint.Status.PENDING:
            return only_pending(queryset)
        if value == "all":
            return queryset
        if value not in Checkpoint.Status.values:
            return queryset.none()
        return queryset.filter(status=value)


class RoleFilter(admin.SimpleListFilter):
    """The roles this user reviews for (managers: every group), not a DISTINCT over the
    whole checkpoint table."""

    title = "role"
    parameter_name = "role"

    def lookups(self, request, model_admin):
        if is_manager(request.user):
            names = Group.objects.exclude(name=settings.HITL_MANAGERS_GROUP).order_by("name")
            return [(n, n) for n in names.values_list("name", flat=True)]
        return [(r, r) for r in sorted(user_roles(request.user))]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(current_role=self.value())
        return queryset


class ClaimFilter(admin.SimpleListFilter):
    title = "claim"
    parameter_name = "claim"

    def lookups(self, request, model_admin):
        return [("mine", "Claimed by me"), ("free", "Unclaimed"), ("others", "Claimed by others")]

    def queryset(self, request, queryset):
        now = timezone.now()
        active = Q(claimed_by__isnull=False, claim_expires_at__gt=now)
        if self.value() == "mine":
            return queryset.filter(active, claimed_by=request.user)
        if self.value() == "free":
            return queryset.exclude(active)
        if self.value() == "others":
            return queryset.filter(active).exclude(claimed_by=request.user)
        return queryset


class DueFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("soon", "Due soon")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "overdue":
            return queryset.filter(deadline__lte=now)
        if self.value() == "soon":
            soon = now + dt.timedelta(seconds=settings.HITL_DUE_SOON_SECONDS)
            return queryset.filter(deadline__gt=now, deadline__lte=soon)
        return queryset


def review_link(cp: Checkpoint) -> str:
    url = reverse("admin:approvals_checkpoint_review", args=[cp.pk])
    return format_html(
        '<a class="cp-title" href="{}" data-cp="{}" data-created="{}">{}</a>',
        url,
        cp.pk,
        cp.created_at.isoformat(),
        cp.title,
    )
