"""Housekeeping: purge rows nobody needs any more. Cheap, idempotent, safe on any number of
clusters (plain DELETEs by age)."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from api.idempotency import purge_idempotency_records

log = logging.getLogger(__name__)


def purge_finished_tasks(now: dt.datetime | None = None) -> int:
    """django-q2 keeps successful and failed task rows (`save_limit` caps only successes)."""
    from django_q.models import Task

    cutoff = (now or timezone.now()) - dt.timedelta(hours=settings.HITL_TASK_RETENTION_HOURS)
    deleted, _ = Task.objects.filter(stopped__lt=cutoff).delete()
    return deleted


def housekeeping(now: dt.datetime | None = None) -> dict[str, int]:
    counts = {
        "task_rows_purged": purge_finished_tasks(now),
        "idempotency_records_purged": purge_idempotency_records(now),
    }
    if any(counts.values()):
        log.info("housekeeping: %s", counts)
    return counts
