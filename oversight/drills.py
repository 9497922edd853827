"""Drills: synthetic requests a manager plants among the real ones to see whether reviewers
really review.

A drill is a copy of a past request with a defect planted in it (or a scenario the manager
writes). At its release time it is asked exactly as the imitated agent would ask: a new run
of that agent, a checkpoint routed by policy, artifacts, timeline lines, the agent as the
actor of every event a reviewer can see. Nothing on the review page, in the queue, in the
API or in notifications tells it apart.

What keeps it from doing anything:
- `Checkpoint.drill` marks it. The agent side's receivers (`agents.handlers`) neither resume
  its run nor owe its agent a webhook; the API never shows a drill (or its run) to an agent.
- When it is resolved, `finish_on_resolved` records the result (caught, missed, ...) and
  completes the drill's run in the same transaction, so nothing is left waiting for the
  reconcile sweep to resume.
- The run and checkpoint are created in one transaction, so a hosted agent's drill run is
  never seen `running` by the reconcile sweep.

Every step is audited on the Drill (`drill.scheduled`, `drill.released`, `drill.finished`,
`drill.withdrawn`): managers' events, never on the checkpoint that reviewers see.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.dispatch import receiver
from django.utils import timezone

from agents.models import Agent, Run, RunEvent
from agents.services import Ask, ask, check_ask
from agents.transitions import run_complete, run_start
from approvals import schemas
from approvals.artifacts import ArtifactInput, artifact_text
from approvals.models import Artifact, Checkpoint, Decision, Risk
from approvals.signals import drill_finished, drill_resolved
from approvals.transitions import checkpoint_cancel
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.exceptions import Conflict, InvalidInput
from oversight.models import Drill

log = logging.getLogger(__name__)

TEXT_KINDS = {Artifact.Kind.DIFF, Artifact.Kind.LOG, Artifact.Kind.JSON, Artifact.Kind.MARKDOWN}
TIMELINE_LIMIT = 50


def request_from(cp: Checkpoint) -> dict[str, Any]:
    """What a past checkpoint asked, as a drill's request (the manager then plants a defect):
    text artifacts by content, others (images, files) copied from the original at release."""
    artifacts = []
    for a in cp.artifacts.filter(edited_from__isnull=True).order_by("created_at", "name"):
        item = {"name": a.name, "kind": a.kind, "content_type": a.content_type}
        if a.kind in TEXT_KINDS or a.content_type.startswith("text/"):
            item["content"] = artifact_text(a)
        else:
            item["copy_of"] = str(a.pk)
        artifacts.append(item)
    events = list(
        RunEvent.objects.filter(run_id=cp.run_id, at__lte=cp.created_at)
        .order_by("-at", "-id")
        .values("kind", "message", "data", "at")[:TIMELINE_LIMIT]
    )[::-1]
    return {
        "agent": cp.agent.slug,
        "task": Run.objects.filter(pk=cp.run_id).values_list("task", flat=True).first() or cp.title,
        "kind": cp.kind,
        "title": cp.title,
        "summary": cp.summary,
        "action": cp.action or {},
        "context": cp.context or {},
        "risk": cp.risk,
        "options": cp.options or [],
        "expires_in": max(int((cp.deadline - cp.created_at).total_seconds()), 60),
        "requester": cp.requester_id,
        "artifacts": artifacts,
        # The timeline before the question, as offsets so it can be replayed at release.
        "timeline": [
            {
                "kind": e["kind"],
                "message": e["message"],
                "data": e["data"],
                "before_seconds": round((cp.created_at - e["at"]).total_seconds(), 3),
            }
            for e in events
        ],
    }


def validate_request(request: dict[str, Any]) -> Agent:
    """The drill's request must be one its agent could make. Raises InvalidInput naming the
    field; returns the agent."""
    agent = Agent.objects.filter(slug=request.get("agent") or "", active=True).first()
    if agent is None:
        raise InvalidInput("No active agent with that slug.", "agent")
    if request.get("kind") not in Checkpoint.Kind.values:
        raise InvalidInput("Unknown kind.", "kind")
    if not str(request.get("title") or "").strip():
        raise InvalidInput("A title is required.", "title")
    action = request.get("action") or {}
    if not isinstance(action, dict):
        raise InvalidInput("The action is a JSON object {tool, args}.", "action")
    if request["kind"] == Checkpoint.Kind.APPROVAL and not action.get("tool"):
        raise InvalidInput("An approval needs an action with a tool.", "action")
    if "args_schema" in action:
        try:
            schemas.check_args_schema(action["args_schema"])
        except InvalidInput as exc:
            raise InvalidInput(str(exc), "action") from None
    if request.get("risk", Risk.MEDIUM) not in Risk.values:
        raise InvalidInput("Unknown risk.", "risk")
    # Within the limits of any agent's request, so that it is refused now, not at release.
    check_ask(
        Ask(
            title=str(request["title"]),
            kind=request["kind"],
            summary=str(request.get("summary", "")),
            action=action,
            context=request.get("context") or {},
            options=request.get("options") or [],
        )
    )
    return agent


def drill_schedule(
    *,
    user,
    name: str,
    defect: str,
    request: dict[str, Any],
    source: Checkpoint | None = None,
    release_at: dt.datetime | None = None,
) -> Drill:
    """A manager schedules a drill; it is released at `release_at` (now by default) by
    `release_due` (the sweep), or at once when due."""
    validate_request(request)
    if not defect.strip():
        raise InvalidInput("Say what is wrong with it (what reviewers should catch).", "defect")
    now = timezone.now()
    with audit.atomic():
        drill = Drill.objects.create(
            name=name.strip() or request["title"][:200],
            scenario=Drill.Scenario.COPY if source else Drill.Scenario.WRITTEN,
            source=source,
            defect=defect.strip(),
            request=request,
            release_at=release_at or now,
            created_by=user,
        )
        audit.record(
            Actor.for_user(user),
            AuditVerb.DRILL_SCHEDULED,
            drill,
            {
                "name": drill.name,
                "scenario": drill.scenario,
                "source": str(source.pk) if source else None,
                "agent": request["agent"],
                "title": request["title"],
                "defect": drill.defect,
                "release_at": drill.release_at,
            },
        )
    if drill.release_at <= now:
        drill_release(drill.pk)
        drill.refresh_from_db()
    return drill


def _artifacts(items: list[dict]) -> list[ArtifactInput]:
    inputs = []
    for item in items:
        content: str | bytes | None = item.get("content")
        if content is None and item.get("copy_of"):
            original = Artifact.objects.filter(pk=item["copy_of"]).first()
            if original is None or not original.file:
                continue
            with original.file.open("rb") as fh:
                content = fh.read()
        inputs.append(
            ArtifactInput(
                name=item["name"],
                kind=item.get("kind", Artifact.Kind.FILE),
                content=content or "",
                content_type=item.get("content_type", ""),
            )
        )
    return inputs


def drill_release(drill_id, *, now: dt.datetime | None = None) -> Checkpoint | None:
    """Ask the drill's request as its agent would: a run, its timeline, the checkpoint.
    Exactly once (a conditional update claims the release); None if it was released or
    withdrawn already."""
    now = now or timezone.now()
    with audit.atomic():
        claimed = Drill.objects.filter(
            pk=drill_id, released_at__isnull=True, finished_at__isnull=True
        ).update(released_at=now)
        if not claimed:
            return None
        drill = Drill.objects.get(pk=drill_id)
        request = drill.request
        agent = validate_request(request)
        actor = Actor.for_agent(agent)
        run = run_start(agent=agent, task=request.get("task") or request["title"], actor=actor)
        Drill.objects.filter(pk=drill.pk).update(run=run)
        RunEvent.objects.bulk_create(
            RunEvent(
                run=run,
                kind=e.get("kind", RunEvent.Kind.STEP),
                message=e["message"],
                data=e.get("data") or {},
                at=now - dt.timedelta(seconds=float(e.get("before_seconds", 0))),
            )
            for e in request.get("timeline", [])
        )
        (cp,) = ask(
            run,
            [
                Ask(
                    title=request["title"],
                    kind=request["kind"],
                    summary=request.get("summary", ""),
                    action=request.get("action") or {},
                    context=request.get("context") or {},
                    risk=request.get("risk", Risk.MEDIUM),
                    options=request.get("options") or [],
                    expires_in=request.get("expires_in"),
                    requester=_requester(request.get("requester")),
                    artifacts=_artifacts(request.get("artifacts", [])),
                    drill=drill,
                )
            ],
            actor=actor,
        )
        audit.record(
            Actor.system("drills"),
            AuditVerb.DRILL_RELEASED,
            drill,
            {"checkpoint": str(cp.pk), "run": str(run.pk), "role": cp.current_role},
        )
    return cp


def _requester(user_id):
    if not user_id:
        return None
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=user_id).first()


def release_due(now: dt.datetime | None = None) -> dict[str, int]:
    """The sweep: release every drill whose time has come."""
    now = now or timezone.now()
    released = 0
    for pk in Drill.objects.filter(
        released_at__isnull=True, finished_at__isnull=True, release_at__lte=now
    ).values_list("pk", flat=True)[:100]:
        try:
            released += drill_release(pk) is not None
        except InvalidInput as exc:  # its agent was deactivated meanwhile
            log.warning("drill %s not released: %s", pk, exc)
    return {"released": released}


def drill_withdraw(drill_id, user) -> Drill:
    """A manager calls a drill off: before release it never happens; after, its checkpoint is
    withdrawn the way its agent would withdraw it."""
    with audit.atomic():
        drill = Drill.objects.select_for_update().get(pk=drill_id)
        if drill.finished_at is not None:
            raise Conflict(f"The drill already finished ({drill.outcome}).", status=drill.outcome)
        audit.record(Actor.for_user(user), AuditVerb.DRILL_WITHDRAWN, drill, {})
        cp = drill.checkpoints.filter(status=Checkpoint.Status.PENDING).first()
        if cp is not None:
            agent = Agent.objects.get(pk=cp.agent_id)
            checkpoint_cancel(
                cp.pk, Actor.for_agent(agent), reason=f"withdrawn by agent {agent.slug}"
            )  # finish_on_resolved records the outcome
        elif drill.released_at is None:
            Drill.objects.filter(pk=drill.pk, finished_at__isnull=True).update(
                outcome=Drill.Outcome.WITHDRAWN, finished_at=timezone.now()
            )
    drill.refresh_from_db()
    return drill


def _outcome(cp: Checkpoint) -> str:
    status = cp.status
    if status == Checkpoint.Status.REJECTED:
        return Drill.Outcome.CAUGHT
    if status == Checkpoint.Status.EXPIRED:
        return Drill.Outcome.EXPIRED
    if status == Checkpoint.Status.CANCELLED:
        return Drill.Outcome.WITHDRAWN
    edited = Decision.objects.filter(checkpoint=cp, outcome=Decision.Outcome.MODIFY).exists()
    return Drill.Outcome.EDITED if edited else Drill.Outcome.MISSED


@receiver(drill_resolved, dispatch_uid="oversight.drills.finish_on_resolved")
def finish_on_resolved(sender, checkpoint: Checkpoint, **kwargs) -> None:
    """Inside the resolving transaction: record the drill's result, announce it
    (`drill_finished`: the managers are told) and close its run (no resume, no webhook: a
    drill is never announced by checkpoint_resolved)."""
    now = timezone.now()
    result = _outcome(checkpoint)
    updated = Drill.objects.filter(pk=checkpoint.drill_id, finished_at__isnull=True).update(
        outcome=result, finished_at=now
    )
    if not updated:
        return
    voters = list(
        Decision.objects.filter(checkpoint=checkpoint)
        .order_by("created_at")
        .values_list("reviewer__username", "outcome", "stage")
    )
    audit.record(
        Actor.system("drills"),
        AuditVerb.DRILL_FINISHED,
        ("approvals.drill", checkpoint.drill_id),
        {
            "outcome": result,
            "checkpoint": str(checkpoint.pk),
            "status": checkpoint.status,
            "votes": [list(v) for v in voters],
        },
    )
    drill_finished.send(
        sender=Drill,
        drill=Drill.objects.get(pk=checkpoint.drill_id),
        checkpoint=checkpoint,
        votes=[list(v) for v in voters],
    )
    run = Run.objects.filter(pk=checkpoint.run_id, status=Run.Status.WAITING).first()
    if run is not None and not run.checkpoints.filter(status=Checkpoint.Status.PENDING).exists():
        run_complete(run.pk, Actor.system("drills"))
