from django.contrib import admin

from agents import webhooks
from agents.models import Agent, AgentKey, Run, WebhookDelivery
from approvals.audit import Actor


class AgentKeyInline(admin.TabularInline):
    model = AgentKey
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # keys are minted with `createagent` (shown once), never typed in


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "owner", "active", "callback_url", "created_at"]
    list_filter = ["kind", "active"]
    list_select_related = ["owner"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [AgentKeyInline]
    exclude = ["webhook_secret"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "agent",
        "status",
        "task_short",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "agent"]
    list_select_related = ["agent", "created_by"]
    search_fields = ["task", "external_id"]
    readonly_fields = [
        "status",
        "state",
        "result",
        "error",
        "resume_requested_at",
        "resume_attempts",
        "version",
        "created_at",
        "finished_at",
    ]

    @admin.display(description="task")
    def task_short(self, obj: Run) -> str:
        return obj.task[:80]

    def has_add_permission(self, request):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "agent",
        "event",
        "checkpoint_id",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event", "agent"]
    list_select_related = ["agent"]
    search_fields = ["=id", "=checkpoint__id", "url"]
    date_hierarchy = "created_at"
    actions = ["resend_selected"]
    readonly_fields = [
        "id",
        "agent",
        "checkpoint",
        "event",
        "url",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "enqueued_at",
        "locked_until",
        "give_up_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Re-send selected deliveries now", permissions=["change"])
    def resend_selected(self, request, queryset):
        actor = Actor.for_user(request.user)
        count = 0
        for delivery in queryset.select_related("agent"):
            webhooks.resend(delivery, actor)
            count += 1
        self.message_user(request, f"{count} deliveries queued to be sent again.")
