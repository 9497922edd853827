"""The agents' admin pages beyond the model admin (mirroring `approvals/review/`): the
start-run page of a hosted agent, and the kill switch (halt, resume, halt every agent)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from agents.models import Agent
from agents.runtime import InvalidRunInput, start_hosted_run
from agents.runtime.agent import AgentNotRunnable, load_agent
from agents.transitions import agent_halt, agent_halt_all, agent_resume
from audit.events import Actor
from core.exceptions import Conflict, InvalidInput, NotAllowed

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


class StartRunForm(forms.Form):
    task = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 80}))
    input = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 80, "class": "vLargeTextField"}),
        help_text="A JSON object. Paths are resolved inside the sandbox roots.",
    )

    def clean_input(self):
        raw = self.cleaned_data["input"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Must be a JSON object, e.g. {"path": "logs"}')
        return value


def start_run(model_admin: ModelAdmin, request: HttpRequest, agent_id: int) -> HttpResponse:
    """Start a hosted run from the admin: the agent's tools, which need approval, and a form
    for the task and its input."""
    agent = get_object_or_404(Agent, pk=agent_id)
    # Starting a run makes the portal act; it takes the same permission as adding a run.
    if not request.user.has_perm("agents.add_run"):
        raise PermissionDenied
    hosted, problem = None, ""
    try:
        hosted = load_agent(agent)
    except AgentNotRunnable as exc:
        problem = str(exc)
    if request.method == "POST" and hosted is not None:
        form = StartRunForm(request.POST)
        if form.is_valid():
            try:
                run = start_hosted_run(
                    agent=agent,
                    task=form.cleaned_data["task"],
                    input=form.cleaned_data["input"],
                    created_by=request.user,
                    actor=Actor.for_user(request.user),
                )
            except InvalidRunInput as exc:
                for field, message in exc.errors.items():
                    form.add_error(field if field in form.fields else None, message)
            else:
                messages.success(
                    request,
                    f"Run {run.pk} started. It pauses for review when it needs approval; "
                    "you cannot approve your own run.",
                )
                return HttpResponseRedirect(reverse("admin:agents_run_change", args=[run.pk]))
    else:
        initial = {}
        if hosted is not None:
            initial = {
                "task": hosted.default_task,
                "input": json.dumps(
                    {**hosted.default_input, **hosted.config.get("default_input", {})},
                    indent=2,
                ),
            }
        form = StartRunForm(initial=initial)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": f"Start a run of {agent.name}",
        "agent": agent,
        "hosted": hosted,
        "problem": problem,
        "form": form,
        "tools": hosted.describe_tools() if hosted else [],
        "rules": [r.tool for r in hosted.all_rules()] if hosted else [],
    }
    return TemplateResponse(request, "admin/agents/agent/start_run.html", context)


def _kill_switch(request: HttpRequest, move, done, back: str) -> HttpResponse:
    """Halt / resume: the transition decides who may; the page says what happened."""
    try:
        result = move()
    except (Conflict, InvalidInput) as exc:
        messages.error(request, str(exc))
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    else:
        messages.success(request, done(result))
    return HttpResponseRedirect(back)


def halt(model_admin: ModelAdmin, request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=agent_id)
    reason = request.POST.get("reason", "")[:2000]
    return _kill_switch(
        request,
        lambda: agent_halt(agent.pk, request.user, reason=reason),
        lambda a: (
            f"{a.slug} is halted: its pending requests are cancelled, its runs stopped, "
            "its API calls refused (423) until it is resumed."
        ),
        reverse("admin:agents_agent_change", args=[agent.pk]),
    )


def resume(model_admin: ModelAdmin, request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=agent_id)
    return _kill_switch(
        request,
        lambda: agent_resume(agent.pk, request.user, note=request.POST.get("note", "")[:2000]),
        lambda a: f"{a.slug} may act again (runs cancelled by the halt stay cancelled).",
        reverse("admin:agents_agent_change", args=[agent.pk]),
    )


def halt_all(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    reason = request.POST.get("reason", "")[:2000]
    return _kill_switch(
        request,
        lambda: agent_halt_all(request.user, reason=reason),
        lambda halted: f"Halted {len(halted)} agent(s).",
        reverse("admin:index"),
    )
