from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from audit import events as audit
from audit.events import Actor, AuditVerb
from core.admin import (
    AuditedSaveMixin,
    ManagersOnlyMixin,
    OutboxAdminMixin,
    ReadOnlyAdminMixin,
)
from notifications import outbox, services
from notifications.models import (
    ChannelKind,
    ChatLink,
    Delivery,
    Notice,
    Preference,
    RoleChannel,
)
from notifications.recipients import told_by
from notifications.services import CHANNEL_SECRETS


class WriteOnlyInput(forms.TextInput):
    """A text input that never sends its value back to the browser (not even in a hidden
    `initial-` input): what is stored is shown masked, in the help text."""

    def format_value(self, value):
        return None


class RoleChannelForm(forms.ModelForm):
    """The URL and the secret are write-only, like an agent's webhook secret: blank keeps
    what is stored, a new value replaces it (audited as replaced, never the value)."""

    url = forms.CharField(
        required=False,
        max_length=2000,
        widget=WriteOnlyInput(attrs={"class": "vLargeTextField", "autocomplete": "off"}),
        help_text="Slack / Teams: the incoming webhook URL (a secret: encrypted at rest, never "
        "shown again). Webhook: the receiver's URL. Public addresses only.",
    )
    secret = forms.CharField(
        required=False,
        max_length=500,
        widget=WriteOnlyInput(attrs={"class": "vLargeTextField", "autocomplete": "off"}),
        help_text="Webhook: signs each POST (X-HITL-Signature, as agent webhooks). Leave blank "
        "to have one generated: it is shown once, after saving.",
    )

    class Meta:
        model = RoleChannel
        fields = ["role", "kind", "name", "url", "secret", "config", "events", "active"]
        help_texts = {
            "kind": "Every role is emailed (its members, every event) until it has an email "
            "channel of its own; Slack, Teams and webhook channels are told in addition. To "
            "stop a role's email, give it an email channel and untick “active”.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored = {name: getattr(self.instance, name) or "" for name in CHANNEL_SECRETS}
        if self.instance.pk:
            shown = {
                "url": services.masked_url(self.stored["url"]),
                "secret": services.masked_secret(self.stored["secret"]),
            }
            for name in CHANNEL_SECRETS:
                field = self.fields[name]
                now = f"Stored: {shown[name]}. Leave blank to keep it; a new value replaces it. "
                field.help_text = (now if shown[name] else "Not set. ") + field.help_text
        self.replaced: list[str] = []
        self.generated_secret = False

    def clean(self):
        data = super().clean()
        for name in CHANNEL_SECRETS:
            typed = (data.get(name) or "").strip()
            if typed and typed != self.stored[name]:
                self.replaced.append(name)
            data[name] = typed or self.stored[name]  # blank: keep (or the generated default)
        self.generated_secret = self.instance.pk is None and "secret" not in self.replaced
        return data


@admin.register(RoleChannel)
class RoleChannelAdmin(AuditedSaveMixin, admin.ModelAdmin):
    """Where each role is told. Validated by the channel's transport when saved (a field
    error, never a failure at the next request) and audited (never the URL or secret, which
    are write-only). The page says how the role is told once it is saved (email included)."""

    form = RoleChannelForm
    list_display = ["role", "kind", "name", "events_display", "active"]
    list_filter = ["kind", "active", "role"]
    list_editable = ["active"]
    readonly_fields = ["told_by_display"]
    actions = ["rotate_secrets"]

    def get_fields(self, request, obj=None):
        fields = ["role", "kind", "name", "url", "secret", "config", "events", "active"]
        return [*fields, "told_by_display"] if obj is not None else fields

    @admin.display(description="events")
    def events_display(self, obj: RoleChannel) -> str:
        return ", ".join(obj.events) if obj.events else "all"

    @admin.display(description="the role is told by")
    def told_by_display(self, obj: RoleChannel) -> str:
        return format_html_join(mark_safe("<br>"), "{}", ((t,) for t in told_by(obj.role)))

    def snapshot(self, obj):
        return audit.snapshot(obj, services.CHANNEL_FIELDS)

    def save_model(self, request, obj, form, change):
        obj._replaced_secrets = getattr(form, "replaced", [])
        obj._generated_secret = getattr(form, "generated_secret", False)
        super().save_model(request, obj, form, change)

    def audited_save(self, request, obj, before):
        services.channel_record(
            obj,
            before,
            actor=Actor.for_user(request.user),
            replaced=getattr(obj, "_replaced_secrets", []),
        )
        # Say what the role gets now: a channel added beside email does not replace it.
        self.message_user(request, f"Role {obj.role} is told by: " + "; ".join(told_by(obj.role)))

    def response_add(self, request, obj, post_url_continue=None):
        # A webhook's generated secret: the receiver needs it, and this is the only time it
        # is shown (as an agent's is when it is created or rotated).
        if obj.kind == ChannelKind.WEBHOOK and getattr(obj, "_generated_secret", False):
            return self._secrets_once(request, [(obj, obj.secret)], created=True)
        return super().response_add(request, obj, post_url_continue)

    @admin.action(
        description="Rotate the signing secret of the selected webhook channels (shown once)",
        permissions=["change"],
    )
    def rotate_secrets(self, request, queryset):
        actor = Actor.for_user(request.user)
        rotated = [
            (c, services.channel_secret_rotate(c, actor=actor))
            for c in queryset.filter(kind=ChannelKind.WEBHOOK)
        ]
        return self._secrets_once(request, rotated, created=False)

    def _secrets_once(self, request, rotated, *, created: bool):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Signing secret" if created else "New signing secrets",
            "rotated": rotated,
            "created": created,
        }
        return TemplateResponse(
            request, "admin/notifications/rolechannel/secrets_once.html", context
        )

    def audited_delete(self, request, target, before):
        audit.record(
            Actor.for_user(request.user), AuditVerb.NOTIFICATION_CHANNEL_DELETED, target, before
        )


@admin.register(Delivery)
class DeliveryAdmin(ManagersOnlyMixin, OutboxAdminMixin, admin.ModelAdmin):
    """Every notification sent or owed: failures are visible here and re-sent by the action
    (the same row, the same Message-ID / X-HITL-Delivery); coalesced ones (status
    "coalesced") name the summary that told of them."""

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
        "coalesced_into",
    ]
    list_select_related = ["coalesced_into"]
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
