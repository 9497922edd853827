from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from approvals import policies, selectors, services
from approvals.models import Artifact, Checkpoint, Decision, Policy, UserToken
from approvals.policies import pages as policy_pages
from approvals.review import changelist as cl
from approvals.review import export, queries, views
from approvals.services import USER_TOKENS
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.admin import (
    AuditedSaveMixin,
    ManagersMayViewMixin,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
)
from core.admin_pages import page
from core.roles import user_roles


class StandingFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "standing"

    def lookups(self, request, model_admin):
        return [("0", "Policies"), ("1", "Standing rules")]

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.exclude(standing_role="")
        if self.value() == "0":
            return queryset.filter(standing_role="")
        return queryset


class PolicyForm(forms.ModelForm):
    """Every admin form of a policy (its page and the list's editable columns): stages, the
    escalation role and the condition are checked as it is saved
    (`policies.validate_policy`), so a typo is a field error now, not a 500 at the next
    request. The check runs where a model's own `clean` would."""

    def _post_clean(self) -> None:
        super()._post_clean()
        try:
            policies.validate_policy(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)


@admin.register(Policy)
class PolicyAdmin(ManagersMayViewMixin, AuditedSaveMixin, admin.ModelAdmin):
    """A policy's page edits its working copy: every save (the form and the list's editable
    columns) is validated by `PolicyForm`, becomes a new draft version and is audited with
    its diff. The versions panel publishes, rolls back and revokes (`approvals.policies`);
    replay and shadow pages show the evidence. Deletions are audited."""

    form = PolicyForm

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=PolicyForm, **kwargs)

    list_display = [
        "name",
        "state_badge",
        "outcome",
        "shadow",
        "active",
        "priority",
        "match_agent",
        "match_tool",
        "condition_short",
        "expires_at",
    ]
    list_filter = [StandingFilter, "outcome", "shadow", "active", "expiry_action"]
    list_editable = ["active", "priority"]
    list_select_related = ["live_version"]
    search_fields = ["name", "match_agent", "match_tool", "condition"]
    readonly_fields = ["proposed_from"]
    fieldsets = [
        (None, {"fields": ["name", "description", "active", "priority"]}),
        ("Match", {"fields": ["match_agent", "match_tool", "match_kind", "min_risk", "condition"]}),
        ("Outcome", {"fields": ["outcome", "reason", "shadow", "stages", "honour_role_hints"]}),
        (
            "Timing",
            {
                "fields": [
                    "timeout_seconds",
                    "expiry_action",
                    "escalation_role",
                    "escalation_timeout_seconds",
                    "escalation_ladder",
                    "sla_seconds",
                    "expires_at",
                ]
            },
        ),
        ("Standing rule", {"fields": ["standing_role", "proposed_from"], "classes": ["collapse"]}),
    ]
    change_form_template = "admin/approvals/policy/change_form.html"

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        # Versioned fields no fieldset above names (a field added later) show up in a last section.
        shown = {f for _name, opts in fieldsets for f in opts["fields"]}
        rest = [
            f.name
            for f in Policy.versioned_fields()
            if f.editable and f.name not in shown and f.name != "id"
        ]
        return [*fieldsets, ("More", {"fields": rest})] if rest else fieldsets

    @admin.display(description="state")
    def state_badge(self, obj: Policy) -> str:
        state = policy_pages.state_of(obj)
        number = f" v{obj.live_version.number}" if obj.live_version_id else ""
        return format_html('<span class="badge policy-{}">{}{}</span>', state, state, number)

    @admin.display(description="condition")
    def condition_short(self, obj: Policy) -> str:
        text = obj.condition or ""
        return text if len(text) <= 60 else text[:57] + "…"

    def snapshot(self, obj):
        return audit.snapshot(obj, policies.audited_fields())

    def audited_save(self, request, obj, before):
        version = policies.policy_record(
            obj, before, actor=Actor.for_user(request.user), by=request.user
        )
        if version is not None and version.number > 1:
            self.message_user(
                request,
                f"Saved as draft version {version.number} of “{obj.name}”: it routes nothing "
                "until it is published.",
            )

    def audited_delete(self, request, target, before):
        policies.policy_deleted(target, before, actor=Actor.for_user(request.user))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        policy = Policy.objects.filter(pk=object_id).select_related("live_version").first()
        extra = dict(extra_context or {})
        if policy is not None:
            extra["engine"] = policy_pages.version_context(request, policy)
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        def wrap(view, methods):
            return page(self.admin_site, view, methods, owner=self)

        name = "approvals_policy"
        return [
            path("standing/", wrap(policy_pages.standing_rules, ["GET", "HEAD"]),
                 name=f"{name}_standing"),
            path("<int:policy_id>/publish/", wrap(policy_pages.publish, ["POST"]),
                 name=f"{name}_publish"),
            path("<int:policy_id>/rollback/<int:number>/", wrap(policy_pages.rollback, ["POST"]),
                 name=f"{name}_rollback"),
            path("<int:policy_id>/revoke/", wrap(policy_pages.revoke, ["POST"]),
                 name=f"{name}_revoke"),
            path("<int:policy_id>/replay/", wrap(policy_pages.replay_page, ["GET", "HEAD", "POST"]),
                 name=f"{name}_replay"),
            path("<int:policy_id>/replay/<uuid:replay_id>/",
                 wrap(policy_pages.replay_run_page, ["GET", "HEAD"]), name=f"{name}_replay_run"),
            path("<int:policy_id>/shadow/", wrap(policy_pages.shadow_page, ["GET", "HEAD"]),
                 name=f"{name}_shadow"),
            *super().get_urls(),
        ]  # fmt: skip


class ArtifactInline(ReadOnlyInline):
    model = Artifact
    fk_name = "checkpoint"
    fields = ["name", "kind", "content_type", "size", "sha256"]


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = [
        "reviewer", "policy_version", "stage", "role", "outcome", "comment", "channel",
        "created_at",
    ]  # fmt: skip


class AutomaticFilter(admin.SimpleListFilter):
    """Oversight: decisions made by policies, counted apart from people's."""

    title = "decided by"
    parameter_name = "automatic"

    def lookups(self, request, model_admin):
        return [("0", "People"), ("1", "Policies (automatic)")]

    def queryset(self, request, queryset):
        if self.value() in ("0", "1"):
            return queryset.filter(policy_version__isnull=self.value() == "0")
        return queryset


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
        def wrap(view):  # the methods: each view's `allow()` marker
            return page(self.admin_site, view, owner=self)

        name = "approvals_checkpoint"
        return [
            path("poll/", wrap(views.poll), name=f"{name}_poll"),
            path("export.csv", wrap(export.export_csv), name=f"{name}_export"),
            path("<uuid:object_id>/review/", wrap(views.review), name=f"{name}_review"),
            path(
                "<uuid:object_id>/propose-rule/",
                wrap(views.propose_rule),
                name=f"{name}_propose_rule",
            ),
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
    list_display = ["checkpoint", "decider", "outcome", "stage", "channel", "created_at"]
    list_filter = ["outcome", "channel", AutomaticFilter]
    list_select_related = ["checkpoint", "reviewer", "policy_version"]

    @admin.display(description="decided by")
    def decider(self, obj: Decision) -> str:
        return obj.decider_label


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

    def has_delete_permission(self, request, obj=None):
        return False  # revoked (audited), never deleted: the row is the token's history

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        actor = Actor.for_user(request.user)
        count = sum(USER_TOKENS.revoke(t, actor) for t in queryset.select_related("user"))
        self.message_user(request, f"Revoked {count} token(s).")


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
