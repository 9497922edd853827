"""Admin building blocks shared by every app's admin (the page wrapper: `core.admin_pages`)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from core.roles import is_manager


class ManagersOnlyMixin:
    """For admin pages that show data across every role (the whole audit log, webhook
    payloads, dead letters, the ledger): managers and superusers only, and every manager may
    read them whatever model permissions their group holds (the production guide grants it
    none); changing anything still takes its permission. Reviewers see the parts that concern
    their checkpoints on the review page."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_manager(request.user)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_manager(request.user)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_manager(request.user) and super().has_change_permission(request, obj)


class ManagersMayViewMixin:
    """For admin pages open to others too that the oversight pages link to (runs, agents,
    policies): managers read everything, so they may open them (list and page, read-only)
    whatever model permissions their group holds (the production guide grants it none).
    Anything beyond reading still takes its own permission; what a page lists is still its
    queryset's business."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_manager(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_manager(request.user) or super().has_view_permission(request, obj)


class ReadOnlyAdminMixin:
    """Rows written only by services and transitions: the admin lists and shows them, never
    adds, edits or deletes them (actions that go through a service may still be offered)."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """An inline that lists related rows: every field read-only, nothing added or removed."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return self.fields or super().get_readonly_fields(request, obj)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AuditedSaveMixin:
    """For admin pages that change authority (policies, agents, people, roles): the form's save
    goes through the app's service, which validates and audits it. Subclasses set `snapshot`
    (obj -> dict of the audited state), `audited_save` (called inside the admin's transaction
    once the object and its many-to-many fields are saved) and `audited_delete`."""

    def snapshot(self, obj) -> dict:
        raise NotImplementedError

    def audited_save(self, request, obj, before: dict | None) -> None:
        raise NotImplementedError

    def audited_delete(self, request, target: tuple[str, str], before: dict) -> None:
        """`target`: (model label, pk) of the row that is gone."""
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        stored = type(obj).objects.filter(pk=obj.pk).first() if change else None
        form._audited_before = self.snapshot(stored) if stored is not None else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        self.audited_save(request, form.instance, form._audited_before)

    def delete_model(self, request, obj):
        before, target = self.snapshot(obj), (obj._meta.label_lower, str(obj.pk))
        super().delete_model(request, obj)
        self.audited_delete(request, target, before)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


# --- the ledger's rows: read-only, for managers (auditors) ----------------------------------

from core.models import Receipt, TreeHead, WitnessDelivery, WitnessState  # noqa: E402


@admin.register(TreeHead)
class TreeHeadAdmin(ReadOnlyAdminMixin, ManagersOnlyMixin, admin.ModelAdmin):
    list_display = ["tree_size", "root_hash", "timestamp", "key_id", "created_at"]
    ordering = ["-tree_size"]


@admin.register(WitnessState)
class WitnessStateAdmin(ReadOnlyAdminMixin, ManagersOnlyMixin, admin.ModelAdmin):
    list_display = [
        "url",
        "last_tree_size",
        "last_pushed_at",
        "last_attempt_at",
        "last_error",
        "owed_tree_size",
        "owed_at",
    ]


@admin.register(WitnessDelivery)
class WitnessDeliveryAdmin(ReadOnlyAdminMixin, ManagersOnlyMixin, admin.ModelAdmin):
    """The heads owed to the witnesses (`core.ledger.witnesses`). No re-send: the next head
    is owed at the next interval anyway."""

    list_display = [
        "url",
        "tree_size",
        "status",
        "attempts",
        "last_attempt_at",
        "next_attempt_at",
        "last_error",
        "delivered_at",
    ]
    list_filter = ["status", "url"]


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdminMixin, ManagersOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "subject", "issued_at", "expires_at", "redeemed_at", "redeemed_by"]
    list_filter = [("redeemed_at", admin.EmptyFieldListFilter)]
    search_fields = ["subject", "redeemed_by"]


class OutboxAdminMixin:
    """For an outbox's rows (`core.outbox`): never added or deleted by hand; a "re-send now"
    action (delivered or failed ones too, the same row) through the subclass's `resend_one`
    (which audits it)."""

    actions = ["resend_selected"]
    resend_label = "deliveries"

    def resend_one(self, row, request) -> None:
        raise NotImplementedError

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Re-send selected now", permissions=["change"])
    def resend_selected(self, request, queryset):
        count = 0
        for row in queryset:
            self.resend_one(row, request)
            count += 1
        self.message_user(request, f"{count} {self.resend_label} queued to be sent again.")
