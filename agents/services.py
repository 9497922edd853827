"""Writes on the agent side that are not run status changes: API keys, and "the agent asks"
(checkpoints + the run waiting, in one transaction), which the REST API, the hosted runtime,
the SDK's implicit runs and `seed_demo` all go through."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from agents.models import Agent, AgentKey, Run, RunEvent, new_webhook_secret
from agents.transitions import run_start, run_wait
from approvals import rules
from approvals.artifacts import ArtifactInput
from approvals.models import Artifact, Checkpoint
from approvals.requests import CheckpointRequest
from approvals.services import TokenKind
from approvals.transitions import checkpoint_auto_decide, checkpoint_request
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.canonical import canonical_json, check_storable_json
from core.exceptions import Conflict, Halted, InvalidInput
from core.text import check_single_line

ARTIFACT_REF = re.compile(
    r"^artifact://([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)

# --- keys ----------------------------------------------------------------------------------------


AGENT_KEYS = TokenKind(
    AgentKey, "a", "agent", AuditVerb.AGENT_KEY_CREATED, AuditVerb.AGENT_KEY_REVOKED,
    usable={"agent__active": True},
)  # fmt: skip


# --- agents: changes of authority --------------------------------------------------------------

# Who owns it (four-eyes), where signed decisions go, whether it may act, how it runs.
AGENT_FIELDS = [
    "name", "slug", "description", "kind", "runtime", "callback_url", "owner", "config", "active",
]  # fmt: skip


def agent_record(agent: Agent, before: dict | None, *, actor: Actor) -> None:
    """Audit an agent that was just created (`before` None) or changed: every changed field's
    old and new value (the webhook secret never appears)."""
    after = audit.snapshot(agent, AGENT_FIELDS)
    if before is None:
        audit.record(actor, AuditVerb.AGENT_CREATED, agent, {"values": after})
    elif diff := audit.changes(before, after):
        audit.record(actor, AuditVerb.AGENT_UPDATED, agent, {"changes": diff})


def agent_webhook_secret_rotate(agent: Agent, *, actor: Actor) -> str:
    """A new webhook signing secret (the old one stops verifying at once); returns it to be
    shown once."""
    with audit.atomic():
        agent.webhook_secret = new_webhook_secret()
        Agent.objects.filter(pk=agent.pk).update(webhook_secret=agent.webhook_secret)
        audit.record(actor, AuditVerb.AGENT_WEBHOOK_SECRET_ROTATED, agent, {})
    return agent.webhook_secret


# --- the agent asks ---------------------------------------------------------------------------


# What the agent asks (`approvals.requests.CheckpointRequest`), under the agent side's name.
Ask = CheckpointRequest


def _labels(a: Ask) -> Iterator[tuple[str, Any]]:
    """(field, text) of every label of the request: shown on one line in every channel."""
    yield "title", a.title
    yield "action.tool", (a.action or {}).get("tool")
    yield "role_hint", a.role_hint
    yield "external_id", a.external_id
    for i, option in enumerate(a.options or []):
        if isinstance(option, dict):
            yield f"options[{i}].value", option.get("value")
            yield f"options[{i}].label", option.get("label")
        else:
            yield f"options[{i}]", option
    for i, option in enumerate(a.reject_options or []):
        yield f"reject_options[{i}].value", option.get("value")
        yield f"reject_options[{i}].label", option.get("label")
    for i, artifact in enumerate(a.artifacts):
        yield f"artifacts[{i}].name", artifact.name


def check_ask(a: Ask) -> None:
    """The limits of what an agent may ask, whichever edge it came through (the REST API,
    HumanLayer, MCP, the hosted runtime): its labels single-line (`core.text`), and the
    request, as the REST API's body would carry it, nested at most HITL_API_MAX_JSON_DEPTH
    levels, storable (`check_storable_json`) and at most HITL_API_MAX_BODY_BYTES (artifacts
    have limits of their own). Raises InvalidInput naming the field."""
    for name, text in _labels(a):
        if isinstance(text, str):
            check_single_line(text, name)
    document = {
        "title": a.title,
        "summary": a.summary,
        "action": a.action,
        "context": a.context,
        "options": a.options,
        "reject_options": a.reject_options,
    }
    for name, value in document.items():
        try:
            check_storable_json({name: value}, settings.HITL_API_MAX_JSON_DEPTH)
        except InvalidInput as exc:
            raise InvalidInput(str(exc), name) from None
    size, limit = len(canonical_json(document).encode()), settings.HITL_API_MAX_BODY_BYTES
    if size > limit:
        raise InvalidInput(
            f"The request is {size} bytes of JSON; the limit is {limit} (HITL_API_MAX_BODY_BYTES).",
            code="too_large",
        )


def refuse_if_halted(agent: Agent, *, current: bool = False) -> None:
    """A halted agent (the kill switch) does nothing: Halted (423 at the API) names who
    halted it, when and why. Read from the database: the caller's row may predate the halt;
    `current`: the caller read this row inside its transaction, just now (no second read)."""
    halted = agent if current else Agent.objects.filter(pk=agent.pk).first()
    if halted is not None and halted.halted_at is not None:
        raise Halted.for_agent(halted)


def _refuse_if_finished(run: Run, consequence: str) -> None:
    if run.status in Run.FINISHED:
        raise Conflict(
            f"Run is {run.status}; {consequence}.",
            status=run.status,
            winner=run.status,
            at=run.finished_at,
        )


def own_run(agent: Agent, run_id) -> Run:
    """One of `agent`'s runs, with its agent row read afresh (one query), else InvalidInput on
    `run` (it may not learn of others')."""
    found = list(Run.objects.filter(pk=run_id, agent=agent).select_related("agent")[:1])
    if not found:
        raise InvalidInput("No such run of yours.", "run")
    return found[0]


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
    agent_current: bool = False,
) -> list[Checkpoint]:
    """The agent asks: the checkpoints (routed by policy) and the run `waiting`, atomically.

    Refused with Conflict on a finished run, and for an idempotency key that an earlier
    checkpoint of this agent already used (possible once the API's own 48 h idempotency
    record was purged: the checkpoint's unique key outlives it). `before_wait` runs inside
    the transaction once the checkpoints exist (the hosted runtime saves its state there).

    A checkpoint that a policy decides automatically is decided once the run waits, so the
    decision reaches the agent exactly as a person's would (resume, webhook, long-poll);
    the returned checkpoints show their outcome. Refused with Halted for a halted agent, and
    with InvalidInput for a request beyond the limits (`check_ask`). `agent_current`: the
    caller read `run.agent` inside the current transaction (`own_run` in the API's), so its
    halt mark is current: not read again."""
    for a in asks:
        check_ask(a)
    refuse_if_halted(run.agent, current=agent_current)
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


def _checked(a: Ask) -> Ask:
    return replace(a, allowed_outcomes=rules.check_allowed_outcomes(a.kind, a.allowed_outcomes))


def _ask(run: Run, asks: list[Ask], actor: Actor, before_wait) -> list[Checkpoint]:
    with audit.atomic(savepoint=False):
        checkpoints = [
            checkpoint_request(
                run,
                replace(
                    a, allowed_outcomes=rules.check_allowed_outcomes(a.kind, a.allowed_outcomes)
                ),
                actor=actor,
            )
            for a in asks
        ]
        if before_wait is not None:
            before_wait(checkpoints)
        run_wait(
            run.pk, actor, checkpoint_id=checkpoints[0].pk if checkpoints else None, was=run.status
        )
        for cp in checkpoints:
            if cp.automatic:
                checkpoint_auto_decide(cp.pk)
                cp.refresh_from_db()
    return checkpoints


def checkpoint_by_external_id(agent: Agent, external_id: str) -> Checkpoint | None:
    return Checkpoint.objects.filter(agent=agent, external_id=external_id).first()


def _repeat_of(agent: Agent, a: Ask) -> Checkpoint | None:
    """The checkpoint an earlier request with `a.external_id` made, if the request was the
    same; Conflict if that id was used for another request."""
    existing = checkpoint_by_external_id(agent, a.external_id)
    if existing is None:
        return None
    if existing.request_sha256 != a.request_sha256:
        raise Conflict(
            f"external_id {a.external_id!r} already names another request of this agent "
            f"(checkpoint {existing.pk}, {existing.status}).",
            status=existing.status,
            winner=str(existing.pk),
            at=existing.created_at,
        )
    return existing


def ask_once(
    run: Run, a: Ask, *, actor: Actor, agent_current: bool = False
) -> tuple[Checkpoint, bool]:
    """`ask` for one request named by the client (`a.external_id`): the first time it creates
    the checkpoint; a repeat of the same request (`a.request_sha256`) returns that
    checkpoint, whatever its status; another request under the same id is a Conflict.
    Returns (checkpoint, created). Concurrent first times create one checkpoint."""
    if not a.external_id:
        return ask(run, [a], actor=actor, agent_current=agent_current)[0], True
    existing = _repeat_of(run.agent, a)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():  # a savepoint: a lost race rolls back only this attempt
            return ask(run, [a], actor=actor, agent_current=agent_current)[0], True
    except IntegrityError:
        existing = _repeat_of(run.agent, a)
        if existing is None:
            raise
        return existing, False


def run_for_external_id(
    agent: Agent, external_id: str, *, task: str, actor: Actor, metadata: dict | None = None
) -> Run:
    """The agent's unfinished run named `external_id` (a HumanLayer run_id, a Claude Code
    session, a LangGraph thread), else a new one: integrations map their clients' sessions to
    runs this way."""
    run = (
        Run.objects.filter(agent=agent, external_id=external_id)
        .exclude(status__in=Run.FINISHED)
        .select_related("agent")
        .order_by("-created_at")
        .first()
    )
    if run is not None:
        return run
    return run_start(
        agent=agent, task=task, actor=actor, external_id=external_id, metadata=metadata
    )


def run_event_add(run: Run, *, kind: str, message: str, data: dict | None = None) -> RunEvent:
    """A line in a run's timeline (the agent's steps, tool calls, observations). Conflict once
    the run finished: its timeline is closed."""
    _refuse_if_finished(run, "its timeline is closed")
    return RunEvent.objects.create(run=run, kind=kind, message=message, data=data or {})
