import json

from django.contrib import admin
from django.db import models
from django.db.models import F, Value
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from agents import admin_views, webhooks
from agents.models import Agent, AgentKey, DeadLetter, Run, RunEvent, RunStep, WebhookDelivery
from agents.outcomes import annotate_outcomes, outcome_for
from agents.selectors import runs_visible_to_person
from agents.services import AGENT_FIELDS, AGENT_KEYS, agent_record, agent_webhook_secret_rotate
from agents.transitions import run_cancel
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.admin import (
    AuditedSaveMixin,
    ManagersMayViewMixin,
    ManagersOnlyMixin,
    OutboxAdminMixin,
    ReadOnlyInline,
)
from core.admin_pages import page
from core.exceptions import Conflict
from core.roles import is_manager


class AgentKeyInline(ManagersMayViewMixin, ReadOnlyInline):
    """Keys are minted with `createagent` (shown once), never typed in; revocation goes
    through agent_key_revoke (audited), never a typed-in date that could be cleared again."""

    model = AgentKey
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]


@admin.register(Agent)
class AgentAdmin(ManagersMayViewMixin, AuditedSaveMixin, admin.ModelAdmin):
    """Every change (owner: four-eyes; callback URL: where signed decisions go; active;
    config) is audited with its old and new value. The webhook secret is never shown here:
    rotating it shows the new one once."""

    list_display = [
        "slug",
        "name",
        "kind",
        "owner",
        "active",
        "halted_display",
        "callback_url",
        "start_link",
        "created_at",
    ]
    list_filter = ["kind", "active"]
    list_select_related = ["owner"]
    # Callback URLs without a scheme are taken as https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [AgentKeyInline]
    exclude = ["webhook_secret"]
    change_form_template = "admin/agents/agent/change_form.html"

    @admin.display(description="halted", ordering="halted_at")
    def halted_display(self, obj: Agent) -> str:
        if obj.halted_at is None:
            return ""
        return format_html('<span class="badge status-rejected">halted</span>')

    def change_view(self, request, object_id, form_url="", extra_context=None):
        agent = Agent.objects.filter(pk=object_id).select_related("halted_by").first()
        extra = {
            **(extra_context or {}),
            "halted_agent": agent if agent is not None and agent.halted_at else None,
            "may_halt": is_manager(request.user) and request.user.is_staff,
        }
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="run")
    def start_link(self, obj: Agent) -> str:
        if obj.kind != Agent.Kind.HOSTED or not obj.active:
            return ""
        url = reverse("admin:agents_agent_start_run", args=[obj.pk])
        return format_html('<a class="button" href="{}">Start run</a>', url)

    actions = ["revoke_keys", "rotate_webhook_secrets"]

    def snapshot(self, obj):
        return audit.snapshot(obj, AGENT_FIELDS)

    def audited_save(self, request, obj, before):
        agent_record(obj, before, actor=Actor.for_user(request.user))

    def audited_delete(self, request, target, before):
        audit.record(Actor.for_user(request.user), AuditVerb.AGENT_DELETED, target, before)

    @admin.action(
        description="Rotate the webhook secret of the selected agents (shown once)",
        permissions=["change"],
    )
    def rotate_webhook_secrets(self, request, queryset):
        actor = Actor.for_user(request.user)
        rotated = [(a, agent_webhook_secret_rotate(a, actor=actor)) for a in queryset]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "New webhook secrets",
            "rotated": rotated,
        }
        return TemplateResponse(request, "admin/agents/agent/rotated_secrets.html", context)

    @admin.action(description="Revoke all API keys of the selected agents", permissions=["change"])
    def revoke_keys(self, request, queryset):
        actor = Actor.for_user(request.user)
        keys = AgentKey.objects.filter(agent__in=queryset, revoked_at__isnull=True)
        count = 0
        for key in keys.select_related("agent"):
            AGENT_KEYS.revoke(key, actor)
            count += 1
        self.message_user(request, f"Revoked {count} key(s).")

    def get_urls(self):
        def post(view):
            return page(self.admin_site, view, ["POST"], owner=self)

        return [
            path(
                "<int:agent_id>/start-run/",
                page(self.admin_site, admin_views.start_run, owner=self),
                name="agents_agent_start_run",
            ),
            path("<int:agent_id>/halt/", post(admin_views.halt), name="agents_agent_halt"),
            path("<int:agent_id>/resume/", post(admin_views.resume), name="agents_agent_resume"),
            path("halt-all/", post(admin_views.halt_all), name="agents_agent_halt_all"),
            *super().get_urls(),
        ]


class RunStepInline(ManagersMayViewMixin, ReadOnlyInline):
    model = RunStep
    fields = [
        "key",
        "tool",
        "status",
        "attempts",
        "checkpoint",
        "started_at",
        "finished_at",
        "error",
    ]
    verbose_name = "executed step"


class RunEventInline(ManagersMayViewMixin, ReadOnlyInline):
    model = RunEvent
    fields = ["at", "kind", "message"]
    verbose_name = "timeline entry"


@admin.register(Run)
class RunAdmin(ManagersMayViewMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "agent",
        "status",
        "outcome",
        "task_short",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "agent"]
    list_select_related = ["agent", "created_by"]
    search_fields = ["task", "external_id"]
    readonly_fields = [
        "agent",
        "task",
        "input",
        "status",
        "outcome",
        "report",
        "error",
        "checkpoints_link",
        "created_by",
        "resume_requested_at",
        "resume_attempts",
        "lease_owner",
        "lease_expires_at",
        "version",
        "created_at",
        "finished_at",
        "state_json",
    ]
    exclude = ["result", "external_id", "metadata", "state"]
    inlines = [RunStepInline, RunEventInline]
    actions = ["cancel_runs"]

    def get_queryset(self, request):
        # The same filter as the API: runs you started or may review; managers see all.
        qs = runs_visible_to_person(request.user).select_related("created_by")
        # A drill's run is shown as one to managers only; reviewers see a run like any other.
        shown = (
            F("drill__id")
            if is_manager(request.user)
            else Value(None, output_field=models.BigIntegerField())
        )
        return annotate_outcomes(qs).annotate(shown_drill=shown)

    @admin.display(description="outcome")
    def outcome(self, obj: Run) -> str:
        result = outcome_for(obj)
        if getattr(obj, "shown_drill", None):
            url = reverse("admin:oversight_drill", args=[obj.shown_drill])
            return format_html('<a class="badge drill" href="{}">drill</a>', url)
        return format_html('<span class="badge {}">{}</span>', result.css, result.text)

    @admin.display(description="state (saved between executions)")
    def state_json(self, obj: Run) -> str:
        if not obj.state:
            return "-"
        return format_html(
            "<details><summary>show</summary><pre class='mono small'>{}</pre></details>",
            json.dumps(obj.state, indent=2, default=str),
        )

    @admin.display(description="task")
    def task_short(self, obj: Run) -> str:
        return obj.task[:80]

    @admin.display(description="final report")
    def report(self, obj: Run) -> str:
        """What was done, what was not and why: the hosted runtime's report
        (`agents.runtime.report`) laid out; any other result as formatted JSON."""
        result = obj.result
        if result is None:
            return "-"
        shaped = isinstance(result, dict) and {"done", "not_done"} <= set(result)
        return mark_safe(
            render_to_string(
                "admin/agents/run/_report.html",
                {
                    "report": result if shaped else None,
                    "raw": None if shaped else json.dumps(result, indent=2, default=str),
                    "review": "admin:approvals_checkpoint_review",
                },
            )
        )

    @admin.display(description="checkpoints")
    def checkpoints_link(self, obj: Run) -> str:
        # The checkpoint admin applies the reviewer's role filter itself.
        url = reverse("admin:approvals_checkpoint_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">{} checkpoint(s)</a>', url, obj.checkpoints.count())

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Object pages are read-only: saving the form would write the whole row (status,
        # state, lease) outside the state machine. The list keeps "change" for the cancel
        # action, which goes through run_cancel.
        return obj is None and super().has_change_permission(request)

    @admin.action(
        description="Cancel selected runs (pending checkpoints are cancelled)",
        permissions=["change"],
    )
    def cancel_runs(self, request, queryset):
        done = 0
        for run in queryset.filter(status__in=[Run.Status.RUNNING, Run.Status.WAITING]):
            try:
                run_cancel(
                    run.pk,
                    Actor.for_user(request.user),
                    reason=f"cancelled by {request.user.get_username()} in the admin",
                )
                done += 1
            except Conflict:
                pass
        self.message_user(request, f"Cancelled {done} run(s).")


@admin.register(DeadLetter)
class DeadLetterAdmin(ManagersOnlyMixin, admin.ModelAdmin):
    """Work the reconcile sweep gave up on; each entry's run was failed with the reason."""

    list_display = ["created_at", "kind", "run_link", "attempts", "reason"]
    list_filter = ["kind"]
    list_select_related = ["run__agent"]
    readonly_fields = ["kind", "run", "target", "attempts", "reason", "created_at"]
    search_fields = ["reason", "target"]

    @admin.display(description="run")
    def run_link(self, obj: DeadLetter) -> str:
        if obj.run_id is None:
            return obj.target
        url = reverse("admin:agents_run_change", args=[obj.run_id])
        return format_html('<a href="{}">{} ({})</a>', url, obj.run_id, obj.run.agent.slug)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ManagersOnlyMixin, OutboxAdminMixin, admin.ModelAdmin):
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

    def resend_one(self, row, request) -> None:
        webhooks.resend(row, Actor.for_user(request.user))
