"""Housekeeping: purge rows nobody needs any more. Cheap, idempotent, safe on any number of
clusters (plain DELETEs by age)."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

# The API's idempotency records (Idempotency-Key replays) are purged by a function the API
# owns; named here so this module does not import the API. Until it exists, this is skipped.
IDEMPOTENCY_PURGE_FUNC = "agents.api.idempotency.purge_idempotency_records"


def purge_finished_tasks(now: dt.datetime | None = None) -> int:
    """django-q2 keeps successful and failed task rows (`save_limit` caps only successes)."""
    from django_q.models import Task

    cutoff = (now or timezone.now()) - dt.timedelta(hours=settings.HITL_TASK_RETENTION_HOURS)
    deleted, _ = Task.objects.filter(stopped__lt=cutoff).delete()
    return deleted


def purge_idempotency_records(now: dt.datetime | None = None) -> int | None:
    """Call the API's purge if it is installed; None means "no such function (yet)"."""
    try:
        purge = import_string(IDEMPOTENCY_PURGE_FUNC)
    except ImportError:
        return None
    return purge(now)


def housekeeping(now: dt.datetime | None = None) -> dict[str, int]:
    counts = {"task_rows_purged": purge_finished_tasks(now)}
    purged = purge_idempotency_records(now)
    if purged is not None:
        counts["idempotency_records_purged"] = purged
    if any(counts.values()):
        log.info("housekeeping: %s", counts)
    return counts
