from django.contrib import admin

from approvals import selectors
from approvals.models import Artifact, AuditEvent, Checkpoint, Decision, Policy, UserToken


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
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


class ArtifactInline(admin.TabularInline):
    model = Artifact
    fk_name = "checkpoint"
    fields = ["name", "kind", "content_type", "size", "sha256"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class DecisionInline(admin.TabularInline):
    model = Decision
    fields = ["reviewer", "stage", "role", "outcome", "comment", "channel", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "agent",
        "kind",
        "risk",
        "status",
        "current_role",
        "deadline",
        "claimed_by",
        "created_at",
    ]
    list_filter = ["status", "kind", "risk", "current_role", "agent"]
    list_select_related = ["agent", "claimed_by"]
    search_fields = ["title", "summary"]
    date_hierarchy = "created_at"
    inlines = [ArtifactInline, DecisionInline]
    readonly_fields = [f.name for f in Checkpoint._meta.fields]

    def get_queryset(self, request):
        # The one role filter, shared with the queue and the API.
        return selectors.checkpoints_visible_to(request.user).select_related("agent", "claimed_by")

    def has_add_permission(self, request):
        return False  # agents create checkpoints through the API or the runtime

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ["checkpoint", "reviewer", "outcome", "stage", "channel", "created_at"]
    list_filter = ["outcome", "channel"]
    list_select_related = ["checkpoint", "reviewer"]

    def get_queryset(self, request):
        visible = selectors.checkpoints_visible_to(request.user)
        return super().get_queryset(request).filter(checkpoint__in=visible)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "checkpoint", "size", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["checkpoint"]
    readonly_fields = ["sha256", "size", "checkpoint", "agent", "edited_from"]

    def get_queryset(self, request):
        visible = selectors.checkpoints_visible_to(request.user)
        return super().get_queryset(request).filter(checkpoint__in=visible)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(UserToken)
class UserTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at"]
    exclude = ["secret_hash"]

    def has_add_permission(self, request):
        return False  # created with `createusertoken`, shown once


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """View-only for everyone, superusers included: the trail is append-only."""

    list_display = ["seq", "at", "actor_type", "actor_label", "verb", "target_type", "target_id"]
    list_filter = ["verb", "actor_type", "target_type"]
    search_fields = ["target_id", "actor_label", "verb"]
    ordering = ["-seq"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
