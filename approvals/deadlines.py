"""The deadline timer: expiry and escalation within a second or two of the deadline, and SLA
breaches marked (and announced) within a second or two of the SLA due time, instead of up to
a minute late with the per-minute sweep alone.

`manage.py portald` runs it (beside the ledger's sequencer, `core.leader` loops both); run
one or more, on any machine: a lease (`core.leader.Lease`) elects one leader among them. The
leader sleeps until the earliest pending deadline or unmarked SLA due time,
looking again at least every POLL_SECONDS (a new request may have an earlier
one), and then does what the sweep does, in the sweep's order: marks the due SLA breaches
(`approvals.sweeps.mark_sla_breaches`), then expires what is overdue
(`approvals.sweeps.expire_overdue`): the same transitions, audit events and signals, so
managers, waiters and webhooks learn of it at once. The per-minute sweep stays as the safety
net (a leader that died is replaced when its lease runs out, LEASE_SECONDS)."""

from __future__ import annotations

import logging

from django.db import connection
from django.utils import timezone

from approvals.models import Checkpoint
from approvals.sweeps import expire_overdue, mark_sla_breaches
from core.leader import Leader, Lease, holder_name

log = logging.getLogger(__name__)
LEASE = "hitl-deadline-timer"
# How often the leader looks for a new, earlier deadline (one indexed query): how late at most
# a request whose deadline comes before every pending one is handled.
POLL_SECONDS = 0.5
# How long a dead leader's lease holds before another portald's timer may take over (the
# leader renews it when half of it is used); a standby looks every half lease, so a handover
# waits up to 1.5 leases (bench/scaleout.py measured 7.8 and 13.1 s).
LEASE_SECONDS = 10


def next_deadline():
    """The earliest deadline of a pending checkpoint (the sweep's partial index), or None."""
    return (
        Checkpoint.with_drills.filter(status=Checkpoint.Status.PENDING)
        .order_by("deadline")
        .values_list("deadline", flat=True)
        .first()
    )


def next_sla_due():
    """The earliest SLA due time of a pending checkpoint not yet marked breached (the SLA
    watch's partial index), or None."""
    return (
        Checkpoint.with_drills.filter(
            status=Checkpoint.Status.PENDING,
            sla_breached_at__isnull=True,
            sla_due_at__isnull=False,
        )
        .order_by("sla_due_at")
        .values_list("sla_due_at", flat=True)
        .first()
    )


class DeadlineTimer(Leader):
    name = "deadline timer"

    def __init__(self, holder: str = "", poll: float | None = None, lease: float | None = None):
        self.poll = poll if poll is not None else POLL_SECONDS
        self.lease = lease if lease is not None else LEASE_SECONDS
        super().__init__(Lease(LEASE, holder or holder_name(), self.lease))

    def round(self) -> float:
        """Mark the due SLA breaches and expire what is due; returns how long to sleep."""
        now = timezone.now()
        deadline, sla = next_deadline(), next_sla_due()
        if (sla is not None and sla <= now) or (deadline is not None and deadline <= now):
            handled = 0
            if sla is not None and sla <= now:
                handled += mark_sla_breaches(now)["breached"]
            if deadline is not None and deadline <= now:
                handled += sum(expire_overdue(now).values())
            # nothing handled: the due rows are locked by a decision or a sweep under way;
            # look again shortly rather than spin on them
            return 0.0 if handled else min(self.poll, 0.05)
        due = min((t for t in (deadline, sla) if t is not None), default=None)
        wait = self.poll if due is None else min(self.poll, (due - now).total_seconds())
        return max(wait, 0.005)

    def failed(self, error: Exception) -> float:
        log.exception("deadline timer: round failed; retrying")
        connection.close()  # a broken connection is reopened next round
        return 1.0
