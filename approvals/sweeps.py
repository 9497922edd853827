"""The expiry sweep: every overdue pending checkpoint is expired or escalated through
`checkpoint_expire`, which loses cleanly to a decision committed at the same moment."""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone

from approvals.exceptions import Conflict
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_expire

log = logging.getLogger(__name__)


def expire_overdue(now: dt.datetime | None = None, batch: int = 500) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"expired": 0, "escalated": 0, "lost_to_decision": 0}
    # Every id handled leaves the overdue set (expired, escalated to a later deadline, or
    # decided by someone else), so this terminates; the round cap is a belt on top.
    for _round in range(10_000):
        ids = list(
            Checkpoint.objects.filter(status=Checkpoint.Status.PENDING, deadline__lte=now)
            .order_by("deadline")
            .values_list("id", flat=True)[:batch]
        )
        for pk in ids:
            try:
                counts[checkpoint_expire(pk, now=now)] += 1
            except (Conflict, Checkpoint.DoesNotExist):
                counts["lost_to_decision"] += 1
        if len(ids) < batch:
            break
    if any(counts.values()):
        log.info("expiry sweep: %s", counts)
    return counts
