"""Writes on the agent side that are not status changes: agents, keys, and the combined
"ask a human" operation (checkpoint + run waiting, one transaction)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from agents.models import Agent, AgentKey, Run
from agents.transitions import run_wait
from approvals import audit
from approvals.audit import Actor
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_request
from hitlportal import tokens


def agent_key_create(agent: Agent, actor: Actor, *, name: str = "") -> str:
    """Mint an API key; returns the plaintext, which is never stored or shown again."""
    new = tokens.generate("a")
    with transaction.atomic():
        key = AgentKey.objects.create(
            agent=agent, name=name, prefix=new.prefix, secret_hash=new.secret_hash
        )
        audit.record(actor, "agent.key_created", agent, {"prefix": key.prefix, "name": name})
    return new.plaintext


def agent_key_authenticate(token: str) -> AgentKey | None:
    return tokens.authenticate(
        AgentKey.objects.select_related("agent").filter(agent__active=True), token
    )


def agent_key_revoke(key: AgentKey, actor: Actor) -> None:
    with transaction.atomic():
        if AgentKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        ):
            audit.record(actor, "agent.key_revoked", key.agent, {"prefix": key.prefix})


def request_checkpoint(run: Run, actor: Actor, **fields) -> Checkpoint:
    """The agent asks: create the checkpoint and mark the run waiting, atomically."""
    with transaction.atomic(savepoint=False):
        cp = checkpoint_request(run=run, actor=actor, **fields)
        run_wait(run.pk, actor, checkpoint_id=cp.pk)
    return cp
