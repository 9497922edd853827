from django.contrib import admin

from agents.models import Agent, AgentKey, Run


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
