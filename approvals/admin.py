from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from approvals import audit, policies, selectors, services
from approvals.audit import Actor, AuditVerb
from approvals.models import Artifact, AuditEvent, Checkpoint, Decision, Policy, UserToken
from approvals.review import changelist as cl
from approvals.review import export, queries, views
from approvals.services import USER_TOKENS
from core.admin import AuditedSaveMixin, ManagersOnlyMixin, ReadOnlyAdminMixin, ReadOnlyInline
from core.roles import user_roles


@admin.register(Policy)
class PolicyAdmin(AuditedSaveMixin, admin.ModelAdmin):
    """Every save (the form and the list's editable columns) is validated by Policy.clean
    and audited with its diff; deletions are audited."""

    list_display = [
        "name",
        "active",
        "priority",
        "match_agent",
        "match_tool",
        "match_kind",
        "min_risk",
        "timeout_seconds",
        "expiry_action",
    ]
    list_filter = ["active", "expiry_action"]
    list_editable = ["active", "priority"]
    search_fields = ["name", "match_agent", "match_tool"]

    def snapshot(self, obj):
        return audit.snapshot(obj, policies.POLICY_FIELDS)

    def audited_save(self, request, obj, before):
        policies.policy_record(obj, before, actor=Actor.for_user(request.user))

    def audited_delete(self, request, target, before):
        policies.policy_deleted(target, before, actor=Actor.for_user(request.user))


class ArtifactInline(ReadOnlyInline):
    model = Artifact
    fk_name = "checkpoint"
    fields = ["name", "kind", "content_type", "size", "sha256"]


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = ["reviewer", "stage", "role", "outcome", "comment", "channel", "created_at"]


QUEUE_DEFERRED = [
    "summary",
    "action",
    "context",
    "options",
    "stages",
    "final_action",
    "resolution_reason",
    "answer",
]


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    """The reviewer's queue (the changelist) and review page (custom views via get_urls, as
    Django's UserAdmin does for its password page). Role filtering: `approvals.selectors`."""

    list_display = [
        "title_link",
        "agent",
        "kind",
        "risk_display",
        "age",
        "time_left",
        "claimed",
        "role",
        "status_display",
    ]
    list_display_links = None
    list_filter = [
        cl.StatusFilter,
        cl.RoleFilter,
        "kind",
        "risk",
        "agent",
        cl.ClaimFilter,
        cl.DueFilter,
    ]
    list_select_related = ["agent", "claimed_by"]
    list_per_page = 50
    search_fields = ["title", "summary", "agent__slug"]
    show_full_result_count = False  # a second COUNT(*) over the table on every page view
    show_facets = admin.ShowFacets.NEVER  # per-filter counts: one COUNT per choice
    # (deadline, id): SQLite walks the partial deadline indexes for this order; with
    # created_at in between it sorts every pending row.
    ordering = ["deadline", "id"]
    actions = None
    inlines = [ArtifactInline, DecisionInline]
    readonly_fields = [f.name for f in Checkpoint._meta.fields]

    # --- access: what a user may do is decided by selectors and transitions, so any
    # reviewer or manager may open the queue; the queryset is what filters.
    def _is_portal_user(self, request) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and (user.is_superuser or user_roles(user)))

    def has_module_permission(self, request):
        return self._is_portal_user(request)

    def has_view_permission(self, request, obj=None):
        return self._is_portal_user(request)

    def has_change_permission(self, request, obj=None):
        return False  # decisions go through the review page, never a model form

    def has_add_permission(self, request):
        return False  # agents create checkpoints through the API or the runtime

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # The one role filter, shared with the review page and the API.
        return selectors.checkpoints_visible_to(request.user).select_related("agent", "claimed_by")

    # --- columns
    @admin.display(description="title", ordering="title")
    def title_link(self, obj: Checkpoint) -> str:
        return cl.review_link(obj)

    @admin.display(description="risk", ordering="risk")
    def risk_display(self, obj: Checkpoint) -> str:
        return cl.risk_badge(obj.risk, obj.get_risk_display())

    @admin.display(description="age", ordering="created_at")
    def age(self, obj: Checkpoint) -> str:
        return cl.humanize_seconds((timezone.now() - obj.created_at).total_seconds())

    @admin.display(description="time left", ordering="deadline")
    def time_left(self, obj: Checkpoint) -> str:
        return cl.deadline_badge(obj)

    @admin.display(description="claimed by", ordering="claimed_by__username")
    def claimed(self, obj: Checkpoint) -> str:
        if obj.claim_is_active():
            return format_html('<span class="claim">{}</span>', obj.claimed_by.get_username())
        return mark_safe('<span class="muted">—</span>')

    @admin.display(description="role", ordering="current_role")
    def role(self, obj: Checkpoint) -> str:
        return obj.current_role

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Checkpoint) -> str:
        return cl.status_badge(obj.status, obj.get_status_display())

    # --- pages
    def changelist_view(self, request, extra_context=None):
        extra = {
            "queue_counts": queries.queue_counts(request.user),
            "poll_url": reverse("admin:approvals_checkpoint_poll"),
            "poll_seq": queries.latest_change_seq(),
            "poll_seconds": settings.HITL_QUEUE_POLL_SECONDS,
            "export_url": reverse("admin:approvals_checkpoint_export"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The review page is the checkpoint's page.
        return HttpResponseRedirect(reverse("admin:approvals_checkpoint_review", args=[object_id]))

    def get_urls(self):
        def wrap(view):
            @require_http_methods(view.http_methods)
            def wrapper(request, *args, **kw):
                return view(self, request, *args, **kw)

            return self.admin_site.admin_view(wrapper)

        name = "approvals_checkpoint"
        return [
            path("poll/", wrap(views.poll), name=f"{name}_poll"),
            path("export.csv", wrap(export.export_csv), name=f"{name}_export"),
            path("<uuid:object_id>/review/", wrap(views.review), name=f"{name}_review"),
            path("<uuid:object_id>/decide/", wrap(views.decide), name=f"{name}_decide"),
            path("<uuid:object_id>/claim/", wrap(views.claim), name=f"{name}_claim"),
            path("<uuid:object_id>/release/", wrap(views.release), name=f"{name}_release"),
            path("<uuid:object_id>/reassign/", wrap(views.reassign), name=f"{name}_reassign"),
            path(
                "<uuid:object_id>/preview-edit/",
                wrap(views.preview_edit),
                name=f"{name}_preview_edit",
            ),
            path(
                "<uuid:object_id>/artifacts/<uuid:artifact_id>/",
                wrap(views.artifact_download),
                name=f"{name}_artifact",
            ),
            *super().get_urls(),
        ]


class VisibleThroughCheckpointMixin:
    """Rows that belong to a checkpoint: a user sees those of the checkpoints they may see
    (the one role filter, `approvals.selectors`)."""

    def get_queryset(self, request):
        visible = selectors.checkpoints_visible_to(request.user)
        return super().get_queryset(request).filter(checkpoint__in=visible)


@admin.register(Decision)
class DecisionAdmin(VisibleThroughCheckpointMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["checkpoint", "reviewer", "outcome", "stage", "channel", "created_at"]
    list_filter = ["outcome", "channel"]
    list_select_related = ["checkpoint", "reviewer"]


@admin.register(Artifact)
class ArtifactAdmin(VisibleThroughCheckpointMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "checkpoint", "size", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["checkpoint"]
    readonly_fields = ["sha256", "size", "checkpoint", "agent", "edited_from"]


@admin.register(UserToken)
class UserTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["secret_hash"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False  # created with `createusertoken`, shown once

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        actor = Actor.for_user(request.user)
        count = sum(USER_TOKENS.revoke(t, actor) for t in queryset.select_related("user"))
        self.message_user(request, f"Revoked {count} token(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, ManagersOnlyMixin, admin.ModelAdmin):
    """View-only for everyone, superusers included: the trail is append-only."""

    list_display = ["seq", "at", "actor_type", "actor_label", "verb", "target_type", "target_id"]
    list_filter = ["verb", "actor_type", "target_type"]
    search_fields = ["target_id", "actor_label", "verb"]
    ordering = ["-seq"]


# --- people and roles: the auth admin, with every change of authority audited ---------------------

admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class PortalUserAdmin(AuditedSaveMixin, UserAdmin):
    def snapshot(self, obj):
        return services.authority_of(obj)

    def audited_save(self, request, obj, before):
        services.user_authority_record(obj, before, actor=Actor.for_user(request.user))

    def audited_delete(self, request, target, before):
        audit.record(Actor.for_user(request.user), AuditVerb.USER_DELETED, target, before)


@admin.register(Group)
class RoleAdmin(AuditedSaveMixin, GroupAdmin):
    """Roles. Granting “Can decide checkpoints routed to their review roles” makes a group a
    review role (its members may decide); the managers group never is one."""

    def snapshot(self, obj):
        return audit.snapshot(obj, services.GROUP_FIELDS)

    def audited_save(self, request, obj, before):
        services.group_record(obj, before, actor=Actor.for_user(request.user))

    def audited_delete(self, request, target, before):
        audit.record(Actor.for_user(request.user), AuditVerb.GROUP_DELETED, target, before)
