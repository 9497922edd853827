"""The notifications' part of the per-minute sweep (`hitlportal.sweeps.run_all`):

- fan-outs: notices still not fanned out HITL_RECONCILE_GRACE after they were recorded (their
  task was lost: a broker that dropped it, a worker killed mid-way) are fanned out here;
- reminders: pending requests whose deadline, or SLA target, is within the lead time
  (HITL_REMIND_BEFORE_DEADLINE / HITL_REMIND_BEFORE_SLA) are announced to their current role,
  once per deadline (an escalation's new deadline gets its own reminder);
- digests: a person's held emails go out as one digest once the oldest is
  HITL_DIGEST_MINUTES old;
- deliveries: retries that came due, and sends whose task a worker or the broker lost.
Every step works from the rows and is safe on any number of clusters at once (Notice and
Delivery are unique per event and target, a notice is claimed once for its fan-out)."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from approvals.models import Checkpoint
from notifications.events import Spec, announce_many, facts, fan_out
from notifications.models import ChannelKind, DigestEntry, Event, Notice
from notifications.outbox import OUTBOX, new_delivery

log = logging.getLogger(__name__)
BATCH = 500


def _reminded(ids, event: str) -> set[tuple]:
    return set(
        Notice.objects.filter(checkpoint_id__in=ids, event=event).values_list(
            "checkpoint_id", "occurrence"
        )
    )


def lost_fan_outs(now: dt.datetime) -> int:
    """Notices whose fan-out task has not run within the reconcile grace: fanned out here (the
    task, if it still comes, finds them claimed). The partial index on notices not fanned out
    keeps this a read of the few in flight."""
    grace = now - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE)
    lost = list(
        Notice.objects.filter(fanned_out_at__isnull=True, created_at__lte=grace)
        .order_by("created_at")
        .values_list("pk", flat=True)[:BATCH]
    )
    if not lost:
        return 0
    try:
        return fan_out(lost)
    except Exception:
        # One notice that cannot be fanned out must hold back neither the others nor the rest
        # of the sweep: one at a time, each failure logged (the next sweep tries it again).
        log.exception("fan-out of %d lost notices failed; trying them one at a time", len(lost))
    done = 0
    for pk in lost:
        try:
            done += fan_out([pk])
        except Exception:
            log.exception("notice %s: fan-out failed", pk)
    return done


def deadline_reminders(now: dt.datetime) -> int:
    lead = settings.HITL_REMIND_BEFORE_DEADLINE
    if not lead:
        return 0
    due = list(
        Checkpoint.with_drills.filter(
            status=Checkpoint.Status.PENDING,
            deadline__gt=now,
            deadline__lte=now + dt.timedelta(seconds=lead),
        ).order_by("deadline")[:BATCH]
    )
    done = _reminded([cp.pk for cp in due], Event.REMINDER)
    specs = [
        Spec(cp, Event.REMINDER, cp.deadline.isoformat(), cp.current_role, data=facts(cp))
        for cp in due
        if (cp.pk, cp.deadline.isoformat()) not in done
    ]
    with transaction.atomic():
        return len(announce_many(specs))


def sla_reminders(now: dt.datetime) -> int:
    """Pending requests whose SLA target (`sla_due_at`: created + sla_seconds) comes within
    the lead time.
    (The breach itself is announced by `checkpoint_sla_breached`, which the transition sends
    when the deadline timer or the sweep marks it: `approvals.sweeps.mark_sla_breaches`.)"""
    lead = settings.HITL_REMIND_BEFORE_SLA
    if not lead:
        return 0
    # The SLA watch's partial index (pending, not yet breached) on `sla_due_at` serves this.
    window = list(
        Checkpoint.with_drills.filter(
            status=Checkpoint.Status.PENDING,
            sla_breached_at__isnull=True,
            sla_due_at__gt=now,
            sla_due_at__lte=now + dt.timedelta(seconds=lead),
        ).values_list("pk", flat=True)
    )
    if not window:
        return 0
    done = _reminded(window, Event.SLA_REMINDER)
    specs = []
    for cp in Checkpoint.with_drills.filter(pk__in=window[:BATCH]):
        if (cp.pk, "") not in done:
            left = (cp.sla_due_at - now).total_seconds()
            specs.append(
                Spec(cp, Event.SLA_REMINDER, role=cp.current_role, data=facts(cp, sla_left=left))
            )
    with transaction.atomic():
        return len(announce_many(specs))


def digests(now: dt.datetime) -> int:
    """One digest per person whose oldest held email has waited HITL_DIGEST_MINUTES."""
    cutoff = now - dt.timedelta(minutes=settings.HITL_DIGEST_MINUTES)
    waiting = (
        DigestEntry.objects.filter(digest__isnull=True)
        .values("recipient")
        .annotate(oldest=Min("created_at"), first=Min("id"))
        .filter(oldest__lte=cutoff)
    )
    sent = 0
    for row in list(waiting[:BATCH]):
        try:
            with transaction.atomic():
                entries = DigestEntry.objects.filter(
                    recipient_id=row["recipient"], digest__isnull=True
                ).select_related("recipient")
                first = entries.first()
                if first is None or not first.recipient.email:
                    continue
                [digest] = OUTBOX.owe_many(
                    [
                        new_delivery(
                            None,
                            ChannelKind.EMAIL,
                            f"digest:{row['recipient']}:{row['first']}",
                            event=Event.DIGEST,
                            recipient_id=row["recipient"],
                            address=first.recipient.email,
                        )
                    ],
                    reason="digest",
                )
                entries.update(digest=digest)
                sent += 1
        except IntegrityError:
            continue  # another cluster bundled these first
    return sent


def run(now: dt.datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    counts = {
        "fanned_out": lost_fan_outs(now),
        "reminders": deadline_reminders(now),
        "sla_reminders": sla_reminders(now),
        "digests": digests(now),
        "deliveries_enqueued": OUTBOX.enqueue_due(now),
    }
    if any(counts.values()):
        log.info("notifications: %s", counts)
    return counts
