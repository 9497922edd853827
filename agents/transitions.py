"""The run state machine: the only code that changes a run's status.

(new) ──start──▶ running ──wait──▶ waiting ──resume (one winner)──▶ running
running|waiting ──complete──▶ completed
running|waiting ──fail──────▶ failed
running|waiting ──cancel────▶ cancelled   (pending checkpoints are cancelled with it)
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents.models import Agent, Run
from approvals import audit
from approvals.audit import Actor, AuditVerb
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_cancel
from core.exceptions import Conflict
from core.queue import enqueue

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
) -> Run:
    with audit.atomic():
        run = Run.objects.create(
            agent=agent,
            task=task,
            input=input or {},
            external_id=external_id,
            metadata=metadata or {},
            created_by=created_by,
            status=Status.RUNNING,
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
        pending = Checkpoint.objects.filter(run_id=run_id, status=Checkpoint.Status.PENDING)
        if pending.exists():
            return False
        updated = Run.objects.filter(pk=run_id, status=Status.WAITING).update(
            resume_requested_at=timezone.now(), resume_attempts=F("resume_attempts") + 1
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
            Checkpoint.objects.filter(run_id__in=ids, status=Checkpoint.Status.PENDING).values_list(
                "run_id", flat=True
            )
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
        if Checkpoint.objects.filter(run_id=run_id, status=Checkpoint.Status.PENDING).exists():
            raise Conflict("Run still has pending checkpoints", status=Status.WAITING)
        run = _move(run_id, (Status.WAITING,), Status.RUNNING)
        resolved = list(
            Checkpoint.objects.filter(run_id=run_id)
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
    return run


def _finish(run_id, new: str, actor: Actor, verb: AuditVerb, **fields: Any) -> Run:
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
        for cp_id in Checkpoint.objects.filter(
            run_id=run_id, status=Checkpoint.Status.PENDING
        ).values_list("id", flat=True):
            try:
                checkpoint_cancel(cp_id, actor, reason=f"run {new}")
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


def run_cancel(run_id, actor: Actor, *, reason: str = "") -> Run:
    return _finish(run_id, Status.CANCELLED, actor, AuditVerb.RUN_CANCELLED, error=reason)
