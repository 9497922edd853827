"""The deadline timer: one leader among all portald processes (a lease) sleeps until the next
deadline and expires or escalates through the same batch transition as the sweep; a real
portald does it on its own, and another portald takes over when the leader dies."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone
from django_q.models import Schedule, Task

from approvals.deadlines import LEASE, DeadlineTimer
from approvals.models import Checkpoint
from audit.models import AuditEvent
from core.models import Lease
from tests.cluster import wait_for
from tests.receivers import HttpReceiver

pytestmark = pytest.mark.django_db


def test_one_leader_expires_what_is_due_and_another_takes_over_when_it_stops(
    make_checkpoint, reviewer
):
    a, b = DeadlineTimer("a", poll=0.5, lease=10), DeadlineTimer("b", poll=0.5, lease=10)
    assert a.tick() == 0.5  # leads; nothing pending: look again in `poll`
    assert b.tick() == 5  # a follower looks again in half a lease
    cp = make_checkpoint(expires_in=3600)
    wait = a.tick()
    assert 0.005 <= wait <= 0.5  # sleeps until the deadline, or `poll`, whichever is first
    Checkpoint.objects.filter(pk=cp.pk).update(deadline=timezone.now() - dt.timedelta(seconds=1))
    assert a.tick() == 0.0
    cp.refresh_from_db()
    assert cp.status == "expired"
    assert AuditEvent.objects.filter(verb="checkpoint.expired", target_id=str(cp.pk)).count() == 1

    # a dies: its lease runs out, b leads
    Lease.objects.filter(name=LEASE).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    b.leadership.lost()
    assert b.tick() == 0.5
    assert Lease.objects.get(name=LEASE).holder == "b"
    a.leadership.lost()
    assert a.tick() == 5  # and a, back, follows


def test_the_next_deadline_comes_from_pending_checkpoints_only(make_checkpoint, reviewer):
    from approvals.deadlines import next_deadline
    from approvals.transitions import checkpoint_decide

    assert next_deadline() is None
    first = make_checkpoint(expires_in=60)
    second = make_checkpoint(expires_in=120)
    assert next_deadline() == first.deadline
    checkpoint_decide(first.pk, reviewer, "approve")
    assert next_deadline() == second.deadline


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_portald_expires_on_the_deadline_without_the_sweep(
    private_urls, clusters, make_checkpoint, agent
):
    """No sweep schedule: only the timer can expire these. The agent's webhook (delivered
    by a cluster) and the audit trail learn of each expiry at once (the figures are in
    docs/benchmarks.md)."""
    Schedule.objects.all().delete()
    hook = HttpReceiver()
    agent.callback_url = hook.url
    agent.save()
    try:
        clusters()
        started = [clusters("portald"), clusters("portald")]
        wait_for(lambda: Lease.objects.filter(name=LEASE).exists(), 30, "a timer to lead")
        checkpoints = [make_checkpoint(expires_in=s) for s in (2, 3, 4)]
        latest = max(cp.deadline for cp in checkpoints)
        while timezone.now() < latest + dt.timedelta(seconds=10):
            if Checkpoint.objects.filter(status="expired").count() == 3 and len(hook.requests) >= 3:
                break
            time.sleep(0.05)
        late = []
        for cp in checkpoints:
            event = AuditEvent.objects.get(verb="checkpoint.expired", target_id=str(cp.pk))
            late.append((event.at - cp.deadline).total_seconds())
        assert len(hook.wait_for(3)) == 3
        assert {r.json()["checkpoint"]["status"] for r in hook.requests} == {"expired"}
        assert not Task.objects.filter(func="hitlportal.sweeps.run_all").exists()
        print(f"\ndeadline → expired: {', '.join(f'{s:.2f} s' for s in late)}")

        # the leader dies; the other cluster takes over once the lease runs out
        holder = Lease.objects.get(name=LEASE).holder
        [leader] = [c for c in started if f":{c.proc.pid}:" in holder]
        [follower] = [c for c in started if c is not leader]
        leader.kill()
        cp = make_checkpoint(expires_in=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cp.refresh_from_db()
            if cp.status == "expired":
                break
            time.sleep(0.1)
        assert cp.status == "expired"
        assert f":{follower.proc.pid}:" in Lease.objects.get(name=LEASE).holder
    finally:
        hook.stop()
