"""Hosted agent runtime: runs agents on django-q2 workers. No task ever waits for a human:
a run that needs approval saves its state, asks, and returns; a decision resumes it.

Interface used by the API, the admin and `startrun` (kept stable):
    start_hosted_run(agent=..., task=..., input=..., created_by=..., actor=...) -> Run
        raises InvalidRunInput (a ValueError with .errors {field: message}) for bad input
    execute_run(run_id)   # agents.tasks.execute_run: start or continue a running run
    continue_run(run_id)  # agents.tasks.resume_run, after the resume transition was won

Modules: tools (the @tool decorator, schemas), rules (approval by argument), sandbox (file
roots), planners (scripted, LLM), agent (HostedAgent base), loop (the execution loop), lease
(one executor per run), report (the final report).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from agents.models import Agent, Run
from agents.runtime.agent import AgentNotRunnable, HostedAgent, InvalidRunInput, clean_run_request
from agents.runtime.planners import Plan, PlanView
from agents.runtime.tools import Preview, StaleAction, ToolContext, ToolError, tool
from agents.transitions import EXECUTE_TASK, run_start
from approvals.audit import Actor
from hitlportal.queue import enqueue

__all__ = [
    "EXECUTE_TASK",
    "AgentNotRunnable",
    "HostedAgent",
    "InvalidRunInput",
    "Plan",
    "PlanView",
    "Preview",
    "StaleAction",
    "ToolContext",
    "ToolError",
    "continue_run",
    "execute_run",
    "start_hosted_run",
    "tool",
]


def start_hosted_run(
    *, agent: Agent, task: str, input: dict | str | None, created_by, actor: Actor
) -> Run:
    """Check the request, create the run (`running`) and enqueue its execution on commit.

    Raises InvalidRunInput (→ 400 / form errors) before anything is stored if the agent is
    not a runnable hosted agent or the input is unusable (e.g. a path outside the sandbox).
    """
    if agent.kind != Agent.Kind.HOSTED:
        raise InvalidRunInput({"agent": f"agent {agent.slug!r} is not a hosted agent"})
    _hosted, task, data = clean_run_request(agent, task, input)
    with transaction.atomic():
        run = run_start(agent=agent, task=task, input=data, created_by=created_by, actor=actor)
        # Record the follow-up on the row so the reconcile sweep can tell a lost enqueue.
        Run.objects.filter(pk=run.pk).update(resume_requested_at=timezone.now())
        transaction.on_commit(lambda: enqueue(EXECUTE_TASK, str(run.pk), reason="start"))
    return run


def execute_run(run_id) -> str:
    from agents.runtime.loop import drive

    return drive(run_id)


def continue_run(run_id) -> str:
    from agents.runtime.loop import drive

    return drive(run_id)
