"""Hosted agent runtime: runs agents on django-q2 workers. No task ever waits for a human:
a run that needs approval saves its state, asks, and returns; a decision resumes it.

Interface used by the API, the admin and `startrun` (kept stable):
    start_hosted_run(agent=..., task=..., input=..., created_by=..., actor=...) -> Run
    continue_run(run_id)  # called by agents.tasks.resume_run after a resume won
"""

from __future__ import annotations

from django.db import transaction

from agents.models import Agent, Run
from agents.transitions import run_start
from approvals.audit import Actor
from hitlportal.queue import enqueue

EXECUTE_TASK = "agents.tasks.execute_run"


def start_hosted_run(
    *, agent: Agent, task: str, input: dict | None, created_by, actor: Actor
) -> Run:
    if agent.kind != Agent.Kind.HOSTED:
        raise ValueError(f"agent {agent.slug!r} is not a hosted agent")
    with transaction.atomic():
        run = run_start(agent=agent, task=task, input=input, created_by=created_by, actor=actor)
        transaction.on_commit(lambda: enqueue(EXECUTE_TASK, str(run.pk), reason="start"))
    return run


def execute_run(run_id) -> None:
    """Run the agent's loop from its saved state (hosted-agents work fills this in)."""
    raise NotImplementedError("the hosted runtime is not built yet")


def continue_run(run_id) -> None:
    return None
