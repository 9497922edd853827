"""Writes on the agent side that are not run status changes: API keys, and "the agent asks"
(checkpoints + the run waiting, in one transaction), which the REST API, the hosted runtime,
the SDK's implicit runs and `seed_demo` all go through."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError

from agents.models import Agent, AgentKey, Run, RunEvent
from agents.transitions import run_wait
from approvals import audit
from approvals.artifacts import ArtifactInput
from approvals.audit import Actor, AuditVerb
from approvals.models import Artifact, Checkpoint, Risk
from approvals.services import TokenKind
from approvals.transitions import checkpoint_request
from core.exceptions import Conflict, InvalidInput

ARTIFACT_REF = re.compile(
    r"^artifact://([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)

# --- keys ----------------------------------------------------------------------------------------


AGENT_KEYS = TokenKind(
    AgentKey, "a", "agent", AuditVerb.AGENT_KEY_CREATED, AuditVerb.AGENT_KEY_REVOKED,
    usable={"agent__active": True},
)  # fmt: skip


# --- the agent asks ---------------------------------------------------------------------------


@dataclass
class Ask:
    """One question for a human: what `checkpoint_request` takes, minus the run."""

    title: str
    kind: str = Checkpoint.Kind.APPROVAL
    summary: str = ""
    action: dict | None = None
    context: dict | None = None
    risk: str = Risk.MEDIUM
    options: list | None = None
    role_hint: str = ""
    expires_in: int | None = None
    idempotency_key: str = ""
    requester: Any = None  # default: whoever started the run
    artifacts: list[ArtifactInput] = field(default_factory=list)


def _refuse_if_finished(run: Run, consequence: str) -> None:
    if run.status in Run.FINISHED:
        raise Conflict(
            f"Run is {run.status}; {consequence}.",
            status=run.status,
            winner=run.status,
            at=run.finished_at,
        )


def own_run(agent: Agent, run_id) -> Run:
    """One of `agent`'s runs, else InvalidInput on `run` (it may not learn of others')."""
    run = Run.objects.filter(pk=run_id, agent=agent).select_related("agent").first()
    if run is None:
        raise InvalidInput("No such run of yours.", "run")
    return run


def artifact_inputs(agent: Agent, items: list[dict]) -> list[ArtifactInput]:
    """A request's artifacts (`{name, kind, content[, content_type]}` or `{name, kind, ref}`)
    as inputs; a `ref` must name an upload of this agent's that is not attached yet.
    Raises InvalidInput on `artifacts` with one entry per item."""
    result, errors = [], []
    for item in items:
        if "ref" in item:
            artifact_id = ARTIFACT_REF.match(item["ref"]).group(1)
            artifact = Artifact.objects.filter(
                pk=artifact_id, agent=agent, checkpoint__isnull=True
            ).first()
            if artifact is None:
                errors.append({"ref": [f"No unattached artifact {item['ref']} of yours."]})
                continue
            result.append(ArtifactInput(name=item["name"], kind=item["kind"], ref=artifact))
        else:
            result.append(
                ArtifactInput(
                    name=item["name"],
                    kind=item["kind"],
                    content=item["content"],
                    content_type=item.get("content_type", ""),
                )
            )
        errors.append({})
    if any(errors):
        raise InvalidInput("Invalid artifact reference.", "artifacts", detail=errors)
    return result


def ask(
    run: Run,
    asks: list[Ask],
    *,
    actor: Actor,
    before_wait: Callable[[list[Checkpoint]], None] | None = None,
) -> list[Checkpoint]:
    """The agent asks: the checkpoints (routed by policy) and the run `waiting`, atomically.

    Refused with Conflict on a finished run, and for an idempotency key that an earlier
    checkpoint of this agent already used (possible once the API's own 48 h idempotency
    record was purged: the checkpoint's unique key outlives it). `before_wait` runs inside
    the transaction once the checkpoints exist (the hosted runtime saves its state there)."""
    _refuse_if_finished(run, "start a new run to ask again")
    try:
        checkpoints = _ask(run, asks, actor, before_wait)
    except IntegrityError as exc:
        # The checkpoint's unique (agent, idempotency key) outlives the API's 48 h record.
        if "idempotency_key" not in str(exc):
            raise
        raise Conflict(
            "A checkpoint was already created with this Idempotency-Key (more than 48 h "
            "ago); use a new key.",
            status="exists",
        ) from None
    return checkpoints


def _ask(run: Run, asks: list[Ask], actor: Actor, before_wait) -> list[Checkpoint]:
    with audit.atomic(savepoint=False):
        checkpoints = [
            checkpoint_request(
                run=run,
                actor=actor,
                title=a.title,
                kind=a.kind,
                summary=a.summary,
                action=a.action,
                context=a.context,
                risk=a.risk,
                options=a.options,
                role_hint=a.role_hint,
                expires_in=a.expires_in,
                requester=a.requester,
                idempotency_key=a.idempotency_key,
                artifacts=a.artifacts,
            )
            for a in asks
        ]
        if before_wait is not None:
            before_wait(checkpoints)
        run_wait(
            run.pk, actor, checkpoint_id=checkpoints[0].pk if checkpoints else None, was=run.status
        )
    return checkpoints


def run_event_add(run: Run, *, kind: str, message: str, data: dict | None = None) -> RunEvent:
    """A line in a run's timeline (the agent's steps, tool calls, observations). Conflict once
    the run finished: its timeline is closed."""
    _refuse_if_finished(run, "its timeline is closed")
    return RunEvent.objects.create(run=run, kind=kind, message=message, data=data or {})
