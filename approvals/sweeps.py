"""The expiry sweep: every overdue pending checkpoint is expired (auto-rejected with a logged
reason) or escalated once to its policy's escalation role with a new deadline. The SLA watch:
every pending checkpoint past its SLA target is marked breached (once, with its event). The
deadline timer (`approvals.deadlines`) runs both at the due times; the sweep is the net.

Batches go through `checkpoint_expire_batch` (one transaction, one UPDATE, one bulk audit
append per batch); a batch that meets a surprise falls back to `checkpoint_expire` row by
row, which loses cleanly to a decision committed at the same moment. Either way each
checkpoint gets exactly one outcome, so any number of clusters may run this at once.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import OperationalError
from django.utils import timezone

from approvals.models import Checkpoint
from approvals.transitions import (
    checkpoint_expire,
    checkpoint_expire_batch,
    checkpoint_sla_breach,
    checkpoint_sla_breach_batch,
)
from core.exceptions import Conflict
from core.queue import batched

log = logging.getLogger(__name__)


def _one_by_one(now: dt.datetime, batch: int, counts: dict[str, int]) -> int:
    ids = list(
        Checkpoint.with_drills.filter(status=Checkpoint.Status.PENDING, deadline__lte=now)
        .order_by("deadline")
        .values_list("id", flat=True)[:batch]
    )
    for pk in ids:
        try:
            counts[checkpoint_expire(pk, now=now)] += 1
        except (Conflict, Checkpoint.DoesNotExist):
            counts["lost_to_decision"] += 1
    return len(ids)


def expire_overdue(now: dt.datetime | None = None, batch: int = 500) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"expired": 0, "escalated": 0, "lost_to_decision": 0}
    # Every handled row leaves the overdue set (expired, escalated to a later deadline, or
    # decided by someone else), so this terminates; the round cap is a belt on top.
    for _round in range(10_000):
        try:
            # The batch's follow-ups (resumes, webhooks) are enqueued together after commit.
            with batched():
                done = checkpoint_expire_batch(now=now, limit=batch)
            handled = done["expired"] + done["escalated"]
            counts["expired"] += done["expired"]
            counts["escalated"] += done["escalated"]
        except (Conflict, OperationalError) as exc:
            log.warning("expiry batch fell back to one by one: %s", exc)
            handled = _one_by_one(now, batch, counts)
        if handled < batch:
            break
    if any(counts.values()):
        log.info("expiry sweep: %s", counts)
    return counts


def mark_sla_breaches(now: dt.datetime | None = None, batch: int = 500) -> dict[str, int]:
    """Mark every pending checkpoint past its SLA due time as breached, in batches; a batch
    that meets a surprise falls back to one at a time. The deadline timer calls this when it
    wakes at an SLA due time, the sweep every minute: marking is idempotent."""
    now = now or timezone.now()
    marked = 0
    for _round in range(10_000):
        try:
            with batched():
                done = checkpoint_sla_breach_batch(now=now, limit=batch)
        except (Conflict, OperationalError) as exc:
            log.warning("SLA batch fell back to one by one: %s", exc)
            ids = list(
                Checkpoint.with_drills.filter(
                    status=Checkpoint.Status.PENDING,
                    sla_breached_at__isnull=True,
                    sla_due_at__lte=now,
                ).values_list("id", flat=True)[:batch]
            )
            done = sum(checkpoint_sla_breach(pk, now=now) for pk in ids)
            if len(ids) < batch:
                marked += done
                break
        marked += done
        if done < batch:
            break
    if marked:
        log.info("SLA watch: %d checkpoint(s) breached their SLA", marked)
    return {"breached": marked}
