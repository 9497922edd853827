"""The run state machine: the only code that changes a run's status.

(new) ──start──▶ running ──wait──▶ waiting ──resume (one winner)──▶ running
running|waiting ──complete──▶ completed
running|waiting ──fail──────▶ failed
running|waiting ──cancel────▶ cancelled   (pending checkpoints are cancelled with it)

Agents (the kill switch):
    active ──halt (manager; a superuser: all)──▶ halted ──resume──▶ active
Halting cancels the agent's unfinished runs (their pending checkpoints with them, through
`checkpoint_cancel`); a hosted run that is executing stops at its next step boundary (the
runtime checks before every planner turn and effect, and its fenced writes fail once the run
is cancelled). While halted, its API calls get 423 and nothing of it starts.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Exists, F
from django.utils import timezone

from agents.models import Agent, Run
from agents.signals import agent_halted, agent_resumed
from approvals.models import Checkpoint
from approvals.services import checkpoints_outcome_received
from approvals.transitions import checkpoint_cancel
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.exceptions import Conflict, Halted, InvalidInput, NotAllowed
from core.queue import enqueue
from core.roles import is_manager

Status = Run.Status
RESUME_TASK = "agents.tasks.resume_run"
EXECUTE_TASK = "agents.tasks.execute_run"


def _move(
    run_id, allowed: tuple[str, ...], new: str, *, fetch: bool = True, **fields: Any
) -> Run | None:
    """Conditional update: only from an allowed status; raises Conflict naming the current one.
    Returns the updated run (None with fetch=False, saving a query on hot paths)."""
    now = timezone.now()
    updated = Run.objects.filter(pk=run_id, status__in=allowed).update(
        status=new, version=F("version") + 1, updated_at=now, **fields
    )
    if not updated:
        status, at = Run.objects.filter(pk=run_id).values_list("status", "updated_at").get()
        raise Conflict(
            f"Run is {status}, not {' or '.join(allowed)}", status=status, winner=status, at=at
        )
    return Run.objects.select_related("agent").get(pk=run_id) if fetch else None


def run_start(
    *,
    agent: Agent,
    task: str,
    actor: Actor,
    input: dict | None = None,
    external_id: str = "",
    metadata: dict | None = None,
    created_by=None,
    complete_when_resolved: bool = False,
) -> Run:
    halted = Agent.objects.filter(pk=agent.pk, halted_at__isnull=False).first()
    if halted is not None:
        raise Halted.for_agent(halted)
    with audit.atomic():
        run = Run.objects.create(
            agent=agent,
            task=task,
            input=input or {},
            external_id=external_id,
            metadata=metadata or {},
            created_by=created_by,
            status=Status.RUNNING,
            complete_when_resolved=complete_when_resolved,
        )
        audit.record(actor, AuditVerb.RUN_STARTED, run, {"agent": agent.slug, "task": task[:500]})
    return run


def run_wait(run_id, actor: Actor, *, checkpoint_id=None, was: str | None = None) -> bool:
    """running → waiting; a run already waiting (parallel checkpoints) stays waiting. One
    UPDATE. `was`: the status the caller just read (the hot path passes it; otherwise it is
    read here). Returns whether the run moved (False: it was already waiting)."""
    conflict = None
    # No savepoint (a round trip each way); the refusal is raised after the block, so that it
    # does not mark an enclosing transaction for rollback.
    with audit.atomic(savepoint=False):
        if was is None:
            was = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
        # Reaching a new wait is progress: the follow-up attempt count starts over.
        updated = Run.objects.filter(pk=run_id, status__in=(Status.RUNNING, Status.WAITING)).update(
            status=Status.WAITING,
            version=F("version") + 1,
            updated_at=timezone.now(),
            resume_attempts=0,
            resume_requested_at=None,
            lease_owner="",
            lease_expires_at=None,
        )
        if not updated:
            status, at = Run.objects.filter(pk=run_id).values_list("status", "updated_at").get()
            conflict = Conflict(
                f"Run is {status}, not running", status=status, winner=status, at=at
            )
        elif was == Status.RUNNING:
            audit.record(
                actor,
                AuditVerb.RUN_WAITING,
                ("agents.run", run_id),
                {"checkpoint": str(checkpoint_id) if checkpoint_id else None},
            )
    if conflict is not None:
        raise conflict
    return was == Status.RUNNING


def run_request_resume(run_id, *, reason: str) -> bool:
    """Schedule the resume follow-up for a waiting run once nothing is pending any more.

    Called inside the resolving transaction (and by the reconcile sweep). Records the request
    on the row, so the sweep can tell a lost enqueue from one in flight, and enqueues on commit.
    Returns whether a resume was scheduled.
    """
    with transaction.atomic(savepoint=False):
        pending = Checkpoint.with_drills.filter(run_id=run_id, status=Checkpoint.Status.PENDING)
        # One statement: the waiting run, only if none of its checkpoints is pending.
        updated = (
            Run.objects.filter(pk=run_id, status=Status.WAITING)
            .filter(~Exists(pending))
            .update(resume_requested_at=timezone.now(), resume_attempts=F("resume_attempts") + 1)
        )
        if not updated:
            return False
        transaction.on_commit(lambda: enqueue(RESUME_TASK, str(run_id), reason=reason))
    return True


def run_request_resume_many(run_ids, *, reason: str) -> int:
    """`run_request_resume` for many runs at once (the expiry sweep): three queries instead of
    two per run. Returns how many resumes were scheduled."""
    ids = list(run_ids)
    if not ids:
        return 0
    with transaction.atomic():
        blocked = set(
            Checkpoint.with_drills.filter(
                run_id__in=ids, status=Checkpoint.Status.PENDING
            ).values_list("run_id", flat=True)
        )
        ready = list(
            Run.objects.filter(
                pk__in=[i for i in ids if i not in blocked], status=Status.WAITING
            ).values_list("pk", flat=True)
        )
        Run.objects.filter(pk__in=ready).update(
            resume_requested_at=timezone.now(), resume_attempts=F("resume_attempts") + 1
        )
        for pk in ready:
            transaction.on_commit(partial(enqueue, RESUME_TASK, str(pk), reason=reason))
    return len(ready)


def run_request_execute(run_id, *, reason: str, count_attempt: bool = True) -> bool:
    """Schedule (again) the execution of a running hosted run whose executor is gone: never
    started (enqueue lost), crashed, or yielded its time slice. Counts attempts on the row so
    the reconcile sweep can dead-letter a run that keeps dying."""
    with transaction.atomic():
        attempts = F("resume_attempts") + 1 if count_attempt else F("resume_attempts")
        updated = Run.objects.filter(pk=run_id, status=Status.RUNNING).update(
            resume_requested_at=timezone.now(), resume_attempts=attempts
        )
        if not updated:
            return False
        transaction.on_commit(lambda: enqueue(EXECUTE_TASK, str(run_id), reason=reason))
    return True


def run_resume(run_id, actor: Actor) -> Run:
    """waiting → running. Of any number of concurrent resumers exactly one wins; the others
    get Conflict and must do nothing."""
    with audit.atomic():
        if Checkpoint.with_drills.filter(run_id=run_id, status=Checkpoint.Status.PENDING).exists():
            raise Conflict("Run still has pending checkpoints", status=Status.WAITING)
        run = _move(run_id, (Status.WAITING,), Status.RUNNING)
        resolved = list(
            Checkpoint.with_drills.filter(run_id=run_id)
            .exclude(status=Checkpoint.Status.PENDING)
            .order_by("-resolved_at")
            .values_list("id", "status")[:10]
        )
        audit.record(
            actor,
            AuditVerb.RUN_RESUMED,
            run,
            {"checkpoints": [[str(pk), status] for pk, status in resolved]},
        )
        if run.agent.kind == Agent.Kind.HOSTED:  # external agents: their webhook or read
            checkpoints_outcome_received(
                [pk for pk, _status in resolved], Actor.for_agent(run.agent), via="resume"
            )
    return run


def _finish(
    run_id, new: str, actor: Actor, verb: AuditVerb, *, why: str = "", **fields: Any
) -> Run:
    """`why`: the reason its pending checkpoints are cancelled with (default "run <new>")."""
    with audit.atomic():
        run = _move(
            run_id,
            (Status.RUNNING, Status.WAITING),
            new,
            finished_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
            **fields,
        )
        for cp_id in Checkpoint.with_drills.filter(
            run_id=run_id, status=Checkpoint.Status.PENDING
        ).values_list("id", flat=True):
            try:
                checkpoint_cancel(cp_id, actor, reason=why or f"run {new}")
            except Conflict:
                pass  # decided at the same moment; the decision stands
        audit.record(
            actor,
            verb,
            run,
            {k: v for k, v in fields.items() if k in ("result", "error")},
        )
    return run


def run_complete(run_id, actor: Actor, *, result: Any = None) -> Run:
    return _finish(run_id, Status.COMPLETED, actor, AuditVerb.RUN_COMPLETED, result=result)


def run_fail(run_id, actor: Actor, *, error: str = "", result: Any = None) -> Run:
    """`result`: partial results of a failed run, kept (and audited) with the failure."""
    extra = {"result": result} if result is not None else {}
    return _finish(run_id, Status.FAILED, actor, AuditVerb.RUN_FAILED, error=error, **extra)


def run_cancel(run_id, actor: Actor, *, reason: str = "", checkpoint_reason: str = "") -> Run:
    """`checkpoint_reason`: what its cancelled checkpoints say (default "run cancelled")."""
    return _finish(
        run_id, Status.CANCELLED, actor, AuditVerb.RUN_CANCELLED, why=checkpoint_reason,
        error=reason,
    )  # fmt: skip


def run_complete_one_shot(checkpoints) -> set:
    """Inside the resolving transaction: the one-question runs among these checkpoints' runs
    (`complete_when_resolved`, e.g. `hitl request` without --run) complete once nothing of
    theirs is pending, with the outcome as their result, instead of waiting for an agent that
    will never resume them. Returns the ids of the runs it completed."""
    by_run = {cp.run_id: cp for cp in checkpoints}
    # The flag is set when a run starts and never changes: where every run was read with its
    # checkpoint (the deciding transition reads it) and none has it, nothing to ask.
    if all(
        Checkpoint.run.is_cached(cp) and not cp.run.complete_when_resolved for cp in checkpoints
    ):
        return set()
    one_shot = set(
        Run.objects.filter(
            pk__in=list(by_run), complete_when_resolved=True, status=Status.WAITING
        ).values_list("pk", flat=True)
    )
    pending = set(
        Checkpoint.with_drills.filter(
            run_id__in=one_shot, status=Checkpoint.Status.PENDING
        ).values_list("run_id", flat=True)
    )
    done = set()
    for run_id in one_shot - pending:
        cp = by_run[run_id]
        result = {"checkpoint": str(cp.pk), "status": cp.status}
        run_complete(run_id, Actor.system("one-question run"), result=result)
        done.add(run_id)
    return done


# --- the kill switch ------------------------------------------------------------------------------


def check_may_halt(user, *, every: bool = False) -> None:
    """Managers halt and resume an agent; halting every agent at once is a superuser's."""
    if not (user and user.is_active and user.is_staff and is_manager(user)):
        raise NotAllowed("Only managers can halt or resume an agent")
    if every and not user.is_superuser:
        raise NotAllowed("Only a superuser can halt every agent at once")


def agent_halt(agent_id, user, *, reason: str) -> Agent:
    """Stop an agent now: halted (its API calls get 423 naming who and why), its unfinished
    runs cancelled with their pending checkpoints, audited, and `agent_halted` sent (the
    owner's notification). Conflict if it already is halted."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            "Say why the agent is halted: its owner and the agent are told.", "reason"
        )
    check_may_halt(user)
    actor = Actor.for_user(user)
    with audit.atomic():
        now = timezone.now()
        if not Agent.objects.filter(pk=agent_id, halted_at__isnull=True).update(
            halted_at=now, halted_by=user, halt_reason=reason
        ):
            agent = Agent.objects.select_related("halted_by").get(pk=agent_id)
            raise Conflict(
                f"Agent {agent.slug} is already halted",
                status="halted",
                winner=agent.halted_by.get_username() if agent.halted_by_id else "",
                at=agent.halted_at,
            )
        agent = Agent.objects.select_related("owner", "halted_by").get(pk=agent_id)
        stop = f"agent halted by {user.get_username()}: {reason}"
        runs = list(
            Run.objects.filter(agent_id=agent_id, status__in=(Status.RUNNING, Status.WAITING))
            .order_by("created_at")
            .values_list("pk", flat=True)
        )
        cancelled = []
        for run_id in runs:
            try:
                run_cancel(run_id, actor, reason=stop, checkpoint_reason=stop)
                cancelled.append(run_id)
            except Conflict:
                pass  # it finished at the same moment
        # Checkpoints of runs that are no longer unfinished (none should be left): the same.
        for cp_id in Checkpoint.with_drills.filter(
            agent_id=agent_id, status=Checkpoint.Status.PENDING
        ).values_list("id", flat=True):
            try:
                checkpoint_cancel(cp_id, actor, reason=stop)
            except Conflict:
                pass
        checkpoints = Checkpoint.with_drills.filter(
            agent_id=agent_id, status=Checkpoint.Status.CANCELLED, resolved_at__gte=now
        ).count()
        audit.record(
            actor,
            AuditVerb.AGENT_HALTED,
            agent,
            {
                "reason": reason,
                "cancelled_runs": [str(r) for r in cancelled],
                "cancelled_checkpoints": checkpoints,
            },
        )
        agent_halted.send(
            sender=Agent,
            agent=agent,
            by=user,
            reason=reason,
            cancelled_runs=cancelled,
            cancelled_checkpoints=checkpoints,
        )
    return agent


def agent_halt_all(user, *, reason: str) -> list[Agent]:
    """A superuser stops every agent that is not halted yet (each halted and audited as
    `agent_halt` does)."""
    check_may_halt(user, every=True)
    halted = []
    with audit.atomic():
        for agent_id in Agent.objects.filter(halted_at__isnull=True).values_list("pk", flat=True):
            try:
                halted.append(agent_halt(agent_id, user, reason=reason))
            except Conflict:
                pass
    return halted


def agent_resume(agent_id, user, *, note: str = "") -> Agent:
    """Lift a halt: the agent may call the API and start runs again (its cancelled runs stay
    cancelled), audited, and `agent_resumed` sent (the owner's notification). Conflict if it
    is not halted."""
    check_may_halt(user)
    with audit.atomic():
        agent = Agent.objects.select_related("halted_by").get(pk=agent_id)
        if not Agent.objects.filter(pk=agent_id, halted_at__isnull=False).update(
            halted_at=None, halted_by=None, halt_reason=""
        ):
            raise Conflict(f"Agent {agent.slug} is not halted", status="active")
        audit.record(
            Actor.for_user(user),
            AuditVerb.AGENT_RESUMED,
            agent,
            {
                "halted_by": agent.halted_by.get_username() if agent.halted_by_id else None,
                "halted_at": agent.halted_at,
                "halt_reason": agent.halt_reason,
                "note": note,
            },
        )
        halted_at, halt_reason = agent.halted_at, agent.halt_reason
        agent.refresh_from_db()
        agent_resumed.send(
            sender=Agent,
            agent=agent,
            by=user,
            halted_at=halted_at,
            halt_reason=halt_reason,
            note=note,
        )
    return agent
