"""The oversight pages' inputs: filters (a bad value is a 400 with field errors, never a 500)
and the drill form."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent, Run
from approvals.models import Checkpoint, Policy, Risk
from audit.models import AuditEvent, AuditVerb
from oversight.analytics import Filters
from oversight.models import OversightRollup

PERIODS = [
    ("7", "Last 7 days"),
    ("30", "Last 30 days"),
    ("90", "Last 90 days"),
    ("custom", "From … to …"),
]
MAX_DAYS = 731
# The reviewers page reads every decision of its period (medians need them all): a bound on
# the period is a bound on its memory.
REVIEWER_MAX_DAYS = 90
FIRST_YEAR = 2000  # nothing the portal measures is older; a date far off is a typo


def _sane_day(value: dt.date) -> None:
    """A date the pages can filter by: from FIRST_YEAR to the end of next year. Beyond that
    there is nothing to see, and the day after 9999-12-31 does not exist (a 500, not a 400)."""
    last = timezone.now().astimezone(dt.UTC).year + 1
    if not FIRST_YEAR <= value.year <= last:
        raise ValidationError(f"Pick a day between {FIRST_YEAR} and {last}.")


def _day_field() -> forms.DateField:
    return forms.DateField(
        required=False,
        validators=[_sane_day],
        widget=forms.DateInput(attrs={"type": "date"}),
    )


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValidationError("Invalid character.")
    return value.strip()


class PeriodForm(forms.Form):
    period = forms.ChoiceField(choices=PERIODS, required=False, initial="7")
    start = _day_field()
    end = _day_field()
    max_days = MAX_DAYS
    max_days_why = ""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.has_error("start") or self.has_error("end"):
            return data
        today = timezone.now().astimezone(dt.UTC).date()
        period = data.get("period") or "7"
        if period == "custom":
            start, end = data.get("start"), data.get("end") or today
            if not start:
                self.add_error("start", "Pick the first day.")
                return data
        else:
            end = today
            start = today - dt.timedelta(days=int(period) - 1)
        if start > end:
            self.add_error("end", "The period ends before it starts.")
        elif (end - start).days >= self.max_days:
            self.add_error("start", f"At most {self.max_days} days at once{self.max_days_why}.")
        data["start"], data["end"], data["period"] = start, end, period
        return data


def _choices(values) -> list[tuple[str, str]]:
    return [("", "all")] + [(v, v) for v in values if v]


class DashboardForm(PeriodForm):
    agent = forms.ModelChoiceField(
        Agent.objects.order_by("slug"), required=False, to_field_name="slug", empty_label="all"
    )
    tool = forms.ChoiceField(required=False)
    policy = forms.ModelChoiceField(
        Policy.objects.order_by("name"), required=False, empty_label="all"
    )
    role = forms.ChoiceField(required=False)
    risk = forms.ChoiceField(choices=[("", "all"), *Risk.choices], required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rolled = OversightRollup.objects.order_by()
        self.fields["tool"].choices = _choices(
            sorted(set(rolled.values_list("tool", flat=True).distinct()))
        )
        roles = set(rolled.values_list("role", flat=True).distinct())
        roles |= set(Group.objects.values_list("name", flat=True))
        self.fields["role"].choices = _choices(sorted(roles))

    def filters(self) -> Filters:
        d = self.cleaned_data
        return Filters(
            start=d["start"],
            end=d["end"],
            agent=d["agent"].pk if d.get("agent") else None,
            tool=d.get("tool") or "",
            policy=d["policy"].pk if d.get("policy") else None,
            role=d.get("role") or "",
            risk=d.get("risk") or "",
        )


class ReviewerForm(PeriodForm):
    role = forms.ChoiceField(required=False)
    max_days = REVIEWER_MAX_DAYS
    max_days_why = " on this page (it reads every decision of the period)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _choices(sorted(Group.objects.values_list("name", flat=True)))


class AuditFilterForm(forms.Form):
    """The audit explorer's filters. Each maps onto an index of the audit table."""

    actor = forms.CharField(required=False, help_text="A username or an agent slug.")
    agent = forms.ModelChoiceField(
        Agent.objects.order_by("slug"), required=False, to_field_name="slug", empty_label="any"
    )
    role = forms.ChoiceField(required=False)
    verb = forms.ChoiceField(choices=[("", "any"), *AuditVerb.choices], required=False)
    target = forms.CharField(required=False, help_text="An id (checkpoint, run, user, ...).")
    start = _day_field()
    end = _day_field()
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [("", "any")] + [
            (g, g) for g in Group.objects.order_by("name").values_list("name", flat=True)
        ]

    def clean_actor(self) -> str:
        return _clean_text(self.cleaned_data["actor"])

    def clean_target(self) -> str:
        return _clean_text(self.cleaned_data["target"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", "The range ends before it starts.")
        return data

    def query(self) -> Q:
        """The filters as one condition on AuditEvent (no ordering, no page)."""
        d = self.cleaned_data
        q = Q()
        if d.get("actor"):
            User = get_user_model()
            users = list(User.objects.filter(username=d["actor"]).values_list("pk", flat=True))
            agents = list(Agent.objects.filter(slug=d["actor"]).values_list("pk", flat=True))
            # One (actor_type, actor_id) pair when the name is a person's or an agent's: the
            # index (actor_type, actor_id, id) then serves the newest page without a sort.
            if users:
                q &= Q(actor_type=AuditEvent.ActorType.USER, actor_id=str(users[0]))
            elif agents:
                q &= Q(actor_type=AuditEvent.ActorType.AGENT, actor_id=str(agents[0]))
            else:  # a system actor ("expiry-sweep", "webhooks", ...)
                q &= Q(actor_type=AuditEvent.ActorType.SYSTEM, actor_label=d["actor"])
        if d.get("agent"):
            agent = d["agent"]
            checkpoints = [
                str(pk)
                for pk in Checkpoint.with_drills.filter(agent=agent).values_list("pk", flat=True)
            ]
            runs = [str(pk) for pk in Run.objects.filter(agent=agent).values_list("pk", flat=True)]
            q &= (
                Q(actor_type=AuditEvent.ActorType.AGENT, actor_id=str(agent.pk))
                | Q(target_type="agents.agent", target_id=str(agent.pk))
                | Q(target_type="approvals.checkpoint", target_id__in=checkpoints)
                | Q(target_type="agents.run", target_id__in=runs)
            )
        if d.get("role"):
            members = get_user_model().objects.filter(groups__name=d["role"])
            q &= Q(
                actor_type=AuditEvent.ActorType.USER,
                actor_id__in=[str(pk) for pk in members.values_list("pk", flat=True)],
            )
        if d.get("verb"):
            q &= Q(verb=d["verb"])
        if d.get("target"):
            kind, sep, ident = d["target"].rpartition(":")
            q &= Q(target_type=kind, target_id=ident) if sep and kind else Q(target_id=ident)
        if d.get("start"):
            q &= Q(at__gte=dt.datetime.combine(d["start"], dt.time.min, tzinfo=dt.UTC))
        if d.get("end"):
            end = dt.datetime.combine(d["end"], dt.time.min, tzinfo=dt.UTC) + dt.timedelta(days=1)
            q &= Q(at__lt=end)
        return q

    def params(self, **override) -> str:
        """The current filters as a query string (for paging and export links)."""
        from django.utils.http import urlencode

        d = {k: v for k, v in self.data.items() if k != "before" and v not in ("", None)}
        d.update({k: v for k, v in override.items() if v is not None})
        return urlencode(d)


class JSONField(forms.CharField):
    """A textarea holding JSON of a given type."""

    def __init__(self, *args, kind: type = dict, **kwargs):
        self.kind = kind
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 6, "class": "mono"}))
        super().__init__(*args, **kwargs)

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        return json.dumps(value if value is not None else self.kind(), indent=2, ensure_ascii=False)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text:
            return self.kind()
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(parsed, self.kind):
            raise ValidationError(f"Must be a JSON {'object' if self.kind is dict else 'list'}.")
        return parsed


class DrillForm(forms.Form):
    """What the drill asks, as its agent would ask it, and what is wrong with it."""

    name = forms.CharField(max_length=200, required=False, help_text="Only managers see it.")
    defect = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The planted defect: what a careful reviewer catches and rejects.",
    )
    agent = forms.ModelChoiceField(
        Agent.objects.filter(active=True).order_by("slug"), to_field_name="slug"
    )
    kind = forms.ChoiceField(choices=Checkpoint.Kind.choices, initial=Checkpoint.Kind.APPROVAL)
    risk = forms.ChoiceField(choices=Risk.choices, initial=Risk.MEDIUM)
    title = forms.CharField(max_length=300)
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    task = forms.CharField(required=False, help_text="The run's task, as the agent states it.")
    action = JSONField(required=False, help_text='{"tool": ..., "args": {...}}')
    context = JSONField(required=False, help_text='{"request": ..., "reasoning": [...]}')
    options = JSONField(required=False, kind=list, help_text="Answer options (questions).")
    artifacts = JSONField(
        required=False,
        kind=list,
        help_text='[{"name": "fix.diff", "kind": "diff", "content": "..."}]',
    )
    expires_in = forms.IntegerField(min_value=60, max_value=30 * 86400, initial=3600)
    release_at = forms.DateTimeField(
        required=False,
        help_text="UTC, e.g. 2026-12-01 09:30. Empty: now.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    source = forms.UUIDField(required=False, widget=forms.HiddenInput)
    requester = forms.IntegerField(required=False, widget=forms.HiddenInput)
    timeline = JSONField(required=False, kind=list, widget=forms.HiddenInput)

    def clean_artifacts(self) -> list:
        items = self.cleaned_data["artifacts"]
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("name"):
                raise ValidationError(f"Item {i + 1}: an object with a name.")
            if item.get("content") is None and not item.get("copy_of"):
                raise ValidationError(f"Item {i + 1}: give its content.")
        return items

    def request(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "agent": d["agent"].slug,
            "task": d.get("task") or d["title"],
            "kind": d["kind"],
            "title": d["title"],
            "summary": d.get("summary", ""),
            "action": d.get("action") or {},
            "context": d.get("context") or {},
            "risk": d["risk"],
            "options": d.get("options") or [],
            "expires_in": d["expires_in"],
            "requester": d.get("requester"),
            "artifacts": d.get("artifacts") or [],
            "timeline": d.get("timeline") or [],
        }
