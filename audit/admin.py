from django.contrib import admin

from audit.models import AuditEvent
from core.admin import ManagersOnlyMixin, ReadOnlyAdminMixin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, ManagersOnlyMixin, admin.ModelAdmin):
    """View-only for everyone, superusers included: the trail is append-only."""

    list_display = ["seq", "at", "actor_type", "actor_label", "verb", "target_type", "target_id"]
    list_filter = ["verb", "actor_type", "target_type"]
    search_fields = ["target_id", "actor_label", "verb"]
    ordering = ["-id"]
