from django.contrib import admin

from approvals import audit
from approvals.audit import Actor, AuditVerb
from core.admin import (
    AuditedSaveMixin,
    ManagersOnlyMixin,
    OutboxAdminMixin,
    ReadOnlyAdminMixin,
)
from notifications import outbox, services
from notifications.models import ChatLink, Delivery, Notice, Preference, RoleChannel


@admin.register(RoleChannel)
class RoleChannelAdmin(AuditedSaveMixin, admin.ModelAdmin):
    """Where each role is told. Validated by the channel's transport when saved (a field
    error, never a failure at the next request) and audited (never the URL or secret)."""

    list_display = ["role", "kind", "name", "events_display", "active"]
    list_filter = ["kind", "active", "role"]
    list_editable = ["active"]
    fields = ["role", "kind", "name", "url", "secret", "config", "events", "active"]

    @admin.display(description="events")
    def events_display(self, obj: RoleChannel) -> str:
        return ", ".join(obj.events) if obj.events else "all"

    def snapshot(self, obj):
        return audit.snapshot(obj, services.CHANNEL_FIELDS)

    def audited_save(self, request, obj, before):
        services.channel_record(obj, before, actor=Actor.for_user(request.user))

    def audited_delete(self, request, target, before):
        audit.record(
            Actor.for_user(request.user), AuditVerb.NOTIFICATION_CHANNEL_DELETED, target, before
        )


@admin.register(Delivery)
class DeliveryAdmin(ManagersOnlyMixin, OutboxAdminMixin, admin.ModelAdmin):
    """Every notification sent or owed: failures are visible here and re-sent by the action
    (the same row, the same Message-ID / X-HITL-Delivery)."""

    list_display = [
        "created_at",
        "event",
        "channel",
        "target",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "channel", "event"]
    search_fields = ["=id", "target", "address", "=notice__checkpoint__id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Delivery._meta.fields]

    resend_label = "notifications"

    def resend_one(self, row, request) -> None:
        outbox.resend(row, Actor.for_user(request.user))


@admin.register(Notice)
class NoticeAdmin(ManagersOnlyMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "event", "checkpoint", "role", "occurrence", "fanned_out_at"]
    list_filter = ["event"]
    list_select_related = ["checkpoint"]
    search_fields = ["=checkpoint__id", "role"]


@admin.register(Preference)
class PreferenceAdmin(ManagersOnlyMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """People change their own on their Notifications page; managers see who is away."""

    list_display = ["user", "email", "email_mode", "away_until", "away_note"]
    list_select_related = ["user"]
    list_filter = ["email", "email_mode"]


@admin.register(ChatLink)
class ChatLinkAdmin(ManagersOnlyMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["user", "provider", "team_id", "chat_user_id", "chat_name", "created_at"]
    list_select_related = ["user"]
    actions = ["unlink_selected"]

    @admin.action(description="Unlink selected chat accounts", permissions=["view"])
    def unlink_selected(self, request, queryset):
        actor = Actor.for_user(request.user)
        count = 0
        for link in queryset.select_related("user"):
            services.chat_unlink(link, actor)
            count += 1
        self.message_user(request, f"Unlinked {count} chat account(s).")
