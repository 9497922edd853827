"""The reconcile sweep: the level-triggered safety net behind the on-commit fast path.

It looks only at rows. Work whose follow-up never ran is enqueued again:
- a waiting run whose checkpoints are all decided but which was never resumed (a crash
  between commit and enqueue, a killed worker, a Redis broker that dropped the task);
- a running hosted run whose executor is gone (its lease lapsed, or it never started).
Every follow-up is idempotent (one resumer wins; the executor holds a lease; effects are
recorded in RunStep), so running this at any time, on any number of clusters, is safe.

Attempts are counted on the run and re-enqueues back off exponentially (grace, 2xgrace,
4xgrace, ...), so a busy cluster is not mistaken for a dead one; after
`HITL_MAX_RESUME_ATTEMPTS` the run is dead-lettered: failed with the reason, and a
`DeadLetter` row shows it in the admin.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from agents import webhooks
from agents.models import Agent, DeadLetter, Run
from agents.transitions import run_fail, run_request_execute, run_request_resume
from approvals.models import Checkpoint
from audit import events as audit
from audit.events import Actor
from core.exceptions import Conflict

log = logging.getLogger(__name__)
BATCH = 1000


def _grace() -> dt.timedelta:
    return dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE)


def _due(run: Run, now: dt.datetime) -> bool:
    """Backoff: the n-th re-enqueue waits grace x 2^(n-1) after the previous request."""
    if run.resume_requested_at is None:
        return True
    wait = _grace() * (2 ** max(run.resume_attempts - 1, 0))
    return run.resume_requested_at <= now - wait


def stuck_waiting_runs(now: dt.datetime | None = None):
    """Waiting runs with nothing pending, at least one resolved checkpoint, and no resume
    requested within the grace period."""
    now = now or timezone.now()
    cutoff = now - _grace()
    return (
        Run.objects.filter(status=Run.Status.WAITING)
        .filter(Q(resume_requested_at__isnull=True) | Q(resume_requested_at__lte=cutoff))
        .filter(checkpoints__status__in=Checkpoint.RESOLVED)
        .exclude(checkpoints__status=Checkpoint.Status.PENDING)
        .distinct()
    )


def orphaned_running_runs(now: dt.datetime | None = None):
    """Running hosted runs nobody executes: the lease lapsed (the executor died), or no
    executor ever took it and the last request is older than the grace period."""
    now = now or timezone.now()
    cutoff = now - _grace()
    never_started = Q(lease_owner="") & (
        Q(resume_requested_at__lte=cutoff)
        | Q(resume_requested_at__isnull=True, updated_at__lte=cutoff)
    )
    lapsed = ~Q(lease_owner="") & Q(lease_expires_at__lt=now)
    return Run.objects.filter(status=Run.Status.RUNNING, agent__kind=Agent.Kind.HOSTED).filter(
        never_started | lapsed
    )


def dead_letter(run: Run, kind: str, reason: str) -> bool:
    with audit.atomic():
        try:
            run_fail(run.pk, Actor.system("reconcile-sweep"), error=f"dead-lettered: {reason}")
        except Conflict:
            return False  # it moved on by itself meanwhile
        DeadLetter.objects.create(
            kind=kind,
            run=run,
            target=f"run {run.pk}",
            attempts=run.resume_attempts,
            reason=reason,
        )
    log.error("dead-lettered %s of run %s: %s", kind, run.pk, reason)
    return True


def _requeue(runs, now: dt.datetime, kind: str, what: str, request) -> tuple[int, int]:
    """Re-enqueue the follow-up of each due run (`request(run_id, reason=...)`), or
    dead-letter it after too many attempts. Returns (enqueued, dead-lettered)."""
    enqueued = dead = 0
    for run in runs.only("id", "resume_attempts", "resume_requested_at")[:BATCH]:
        if not _due(run, now):
            continue
        if run.resume_attempts >= settings.HITL_MAX_RESUME_ATTEMPTS:
            reason = f"{what} did not complete after {run.resume_attempts} attempts"
            dead += dead_letter(run, kind, reason)
        elif request(run.pk, reason="reconcile"):
            enqueued += 1
    return enqueued, dead


def reconcile(now: dt.datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    resumes, dead_waiting = _requeue(
        stuck_waiting_runs(now), now, DeadLetter.Kind.RESUME, "resume", run_request_resume
    )
    executions, dead_running = _requeue(
        orphaned_running_runs(now), now, DeadLetter.Kind.EXECUTE, "execution", run_request_execute
    )
    counts = {
        "resumes_enqueued": resumes,
        "executions_enqueued": executions,
        "dead_lettered": dead_waiting + dead_running,
        # Webhooks: retries that came due, and sends whose task a worker or the broker lost.
        "webhooks_enqueued": webhooks.OUTBOX.enqueue_due(now),
    }
    if any(counts.values()):
        log.info("reconcile: %s", counts)
    return counts
