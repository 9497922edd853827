"""django-q2 tasks of the agent side. They take ids, load rows, call transitions, and are
idempotent: a duplicate delivery finds the work done and does nothing."""

from __future__ import annotations

import logging

from agents.models import Agent, Run
from agents.runtime.loop import drive
from agents.transitions import run_resume
from agents.webhooks import deliver
from audit.events import Actor
from core.exceptions import Conflict

log = logging.getLogger(__name__)


def resume_run(run_id: str) -> str:
    try:
        run = run_resume(run_id, Actor.system("resume-task"))
    except Conflict as exc:
        # Another resumer won, or the run still waits for someone: nothing to do twice.
        log.info("resume of run %s skipped: %s", run_id, exc)
        return f"skipped: {exc}"
    except Run.DoesNotExist:
        return "skipped: no such run"
    if run.agent.kind == Agent.Kind.HOSTED:
        return f"resumed: {drive(run.pk)}"
    return "resumed"


def execute_run(run_id: str) -> str:
    """Start or continue a running hosted run (a duplicate finds the lease taken)."""
    return drive(run_id)


def deliver_webhook(delivery_id: str) -> str:
    """One attempt at a webhook delivery; idempotent: a delivered, failed, not-yet-due or
    in-flight row is left alone."""
    return deliver(delivery_id)
