"""The deadline timer: expiry and escalation within a second or two of the deadline, and SLA
breaches marked (and announced) within a second or two of the SLA due time, instead of up to
a minute late with the per-minute sweep alone.

Every task cluster runs it, in a thread of the `qcluster` process itself (`hitlportal.apps`
starts it; workers are recycled every few hundred tasks, the cluster's own process lives as
long as the cluster); a lease (`core.leases`) elects one leader among all clusters, on every
machine. The leader sleeps until the earliest pending deadline or unmarked SLA due time,
looking again at least every HITL_DEADLINE_POLL seconds (a new request may have an earlier
one), and then does what the sweep does, in the sweep's order: marks the due SLA breaches
(`approvals.sweeps.mark_sla_breaches`), then expires what is overdue
(`approvals.sweeps.expire_overdue`): the same transitions, audit events and signals, so
managers, waiters and webhooks learn of it at once. The per-minute sweep stays as the safety
net (a leader that died is replaced when its lease runs out, HITL_DEADLINE_LEASE seconds)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from approvals.models import Checkpoint
from approvals.sweeps import expire_overdue, mark_sla_breaches
from core import leases

log = logging.getLogger(__name__)
LEASE = "hitl-deadline-timer"


def next_deadline():
    """The earliest deadline of a pending checkpoint (the sweep's partial index), or None."""
    return (
        Checkpoint.objects.filter(status=Checkpoint.Status.PENDING)
        .order_by("deadline")
        .values_list("deadline", flat=True)
        .first()
    )


def next_sla_due():
    """The earliest SLA due time of a pending checkpoint not yet marked breached (the SLA
    watch's partial index), or None."""
    return (
        Checkpoint.objects.filter(
            status=Checkpoint.Status.PENDING,
            sla_breached_at__isnull=True,
            sla_due_at__isnull=False,
        )
        .order_by("sla_due_at")
        .values_list("sla_due_at", flat=True)
        .first()
    )


class DeadlineTimer:
    def __init__(self, holder: str = "", poll: float | None = None, lease: float | None = None):
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.poll = poll if poll is not None else settings.HITL_DEADLINE_POLL
        self.lease = lease if lease is not None else settings.HITL_DEADLINE_LEASE
        self._held_until = 0.0  # monotonic time until which our lease surely holds

    def _leading(self) -> bool:
        """Hold the lease, renewing it when half of it is used up (one write per half lease,
        not one per tick)."""
        now = time.monotonic()
        if now < self._held_until - self.lease / 2:
            return True
        if leases.hold(LEASE, self.holder, self.lease):
            self._held_until = now + self.lease
            return True
        self._held_until = 0.0
        return False

    def tick(self) -> float:
        """One round: mark the due SLA breaches and expire what is due (if leading); returns
        how long to sleep."""
        if not self._leading():
            return self.lease / 2
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

    def run(self, stop: threading.Event) -> None:
        log.info("deadline timer %s started", self.holder)
        while not stop.is_set():
            try:
                wait = self.tick()
            except Exception:
                log.exception("deadline timer: round failed; retrying")
                connection.close()  # a broken connection is reopened next round
                wait = 1.0
            if wait:
                stop.wait(wait)
        try:
            leases.release(LEASE, self.holder)
        finally:
            close_old_connections()


_started = threading.Event()


def _after_the_cluster_forked(run, stop: threading.Event) -> None:
    """django-q2 forks its sentinel right after start-up; the timer begins once that child
    exists, so no fork ever copies a timer in the middle of its database work."""
    for _ in range(600):
        if multiprocessing.active_children() or stop.wait(0.1):
            break
    run(stop)


def start_in_background(*, after_fork: bool = False) -> threading.Thread | None:
    """Start the timer in a daemon thread of this process, once (HITL_DEADLINE_TIMER=0: never).
    It dies with its process; another process's timer takes the lease over."""
    if not settings.HITL_DEADLINE_TIMER or _started.is_set():
        return None
    _started.set()
    run = DeadlineTimer().run
    target, args = (_after_the_cluster_forked, (run,)) if after_fork else (run, ())
    thread = threading.Thread(
        target=target, args=(*args, threading.Event()), name="hitl-deadline-timer"
    )
    thread.daemon = True
    thread.start()
    return thread
