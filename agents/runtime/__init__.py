"""Hosted agent runtime: runs agents on django-q2 workers. No task ever waits for a human:
a run that needs approval saves its state, asks, and returns; a decision resumes it.

Interface used by the API, the admin and `startrun` (kept stable):
    start_hosted_run(agent=..., task=..., input=..., created_by=..., actor=...) -> Run
        raises InvalidRunInput (a ValueError with .errors {field: message}) for bad input
    drive(run_id)  # start or continue a running run: the execute task, and the resume task
                   # once it won the resume transition

Modules: tools (the @tool decorator, schemas), rules (approval by argument), sandbox (file
roots), planners (scripted, LLM), agent (HostedAgent base), loop (the execution loop), lease
(one executor per run), report (the final report).
"""

from __future__ import annotations

from agents.models import Agent, Run
from agents.runtime.agent import AgentNotRunnable, HostedAgent, InvalidRunInput, clean_run_request
from agents.runtime.loop import drive
from agents.runtime.planners import Plan, PlanView
from agents.runtime.tools import Preview, StaleAction, ToolContext, ToolError, tool
from agents.transitions import run_request_execute, run_start
from audit import events as audit
from audit.events import Actor

__all__ = [
    "AgentNotRunnable",
    "HostedAgent",
    "InvalidRunInput",
    "Plan",
    "PlanView",
    "Preview",
    "StaleAction",
    "ToolContext",
    "ToolError",
    "drive",
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
    with audit.atomic():
        run = run_start(agent=agent, task=task, input=data, created_by=created_by, actor=actor)
        # Starting is not a failed attempt: it does not count towards dead-lettering.
        run_request_execute(run.pk, reason="start", count_attempt=False)
    return run
