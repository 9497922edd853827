"""The reconcile sweep: the level-triggered safety net behind the on-commit fast path.

It looks only at rows. Any decided work whose follow-up never ran (a crash between commit and
enqueue, a killed worker, a Redis broker that dropped the task) is enqueued again; every
follow-up is idempotent, so running this at any time, on any number of clusters, is safe.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from agents import webhooks
from agents.models import Run
from agents.transitions import max_resume_attempts, run_fail, run_request_resume
from approvals.audit import Actor
from approvals.exceptions import Conflict
from approvals.models import Checkpoint

log = logging.getLogger(__name__)


def stuck_waiting_runs(now: dt.datetime | None = None):
    """Waiting runs with nothing pending, at least one resolved checkpoint, and no resume
    requested within the grace period."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE)
    return (
        Run.objects.filter(status=Run.Status.WAITING)
        .filter(Q(resume_requested_at__isnull=True) | Q(resume_requested_at__lte=cutoff))
        .filter(checkpoints__status__in=Checkpoint.RESOLVED)
        .exclude(checkpoints__status=Checkpoint.Status.PENDING)
        .distinct()
    )


def reconcile(now: dt.datetime | None = None) -> dict[str, int]:
    counts = {"resumes_enqueued": 0, "dead_lettered": 0, "webhooks_enqueued": 0}
    for run in stuck_waiting_runs(now).only("id", "resume_attempts")[:1000]:
        if run.resume_attempts >= max_resume_attempts():
            try:
                run_fail(
                    run.pk,
                    Actor.system("reconcile-sweep"),
                    error=f"dead-lettered: resume did not complete after "
                    f"{run.resume_attempts} attempts",
                )
                counts["dead_lettered"] += 1
            except Conflict:
                pass
            continue
        if run_request_resume(run.pk, reason="reconcile"):
            counts["resumes_enqueued"] += 1
    # Webhooks: retries that came due, and sends whose task a worker or the broker lost.
    counts["webhooks_enqueued"] = webhooks.enqueue_due(now)
    if any(counts.values()):
        log.info("reconcile: %s", counts)
    return counts
