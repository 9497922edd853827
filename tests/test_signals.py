"""approvals announces every moment others react to (requested, routed to a new stage or
escalated, resolved), from its transitions, inside their transactions: what notifications and
metrics will subscribe to. A rolled-back transition announces nothing that survives."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import pytest
from django.db import transaction
from django.utils import timezone

from approvals.signals import (
    checkpoint_requested,
    checkpoint_resolved,
    checkpoint_routed,
    checkpoints_resolved,
)
from approvals.sweeps import expire_overdue
from approvals.transitions import checkpoint_decide, checkpoint_expire
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db


@contextmanager
def heard(*signals):
    """What each signal carried while the block ran: (signal name, checkpoint id, extras)."""
    log: list[tuple] = []
    names = {
        checkpoint_requested: "requested",
        checkpoint_routed: "routed",
        checkpoint_resolved: "resolved",
        checkpoints_resolved: "resolved_batch",
    }
    receivers = []
    for signal in signals:

        def receiver(sender, signal=signal, **kwargs):
            cps = kwargs.pop("checkpoints", None)
            cp = kwargs.pop("checkpoint", None)
            assert transaction.get_connection().in_atomic_block  # inside the transition
            ids = sorted(str(c.pk) for c in cps) if cps is not None else str(cp.pk)
            log.append((names[signal], ids, kwargs))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    try:
        yield log
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)


def test_a_request_is_announced(make_checkpoint):
    with heard(checkpoint_requested) as log:
        cp = make_checkpoint()
    assert log == [("requested", str(cp.pk), {})]


def test_a_stage_advance_is_announced_as_routed(make_checkpoint, reviewer, dba):
    PolicyFactory(stages=[{"role": "ops", "approvals": 1}, {"role": "dba", "approvals": 1}])
    cp = make_checkpoint()
    with heard(checkpoint_routed, checkpoint_resolved) as log:
        checkpoint_decide(cp.pk, reviewer, "approve")
    assert log == [("routed", str(cp.pk), {"reason": "stage"})]
    with heard(checkpoint_routed, checkpoint_resolved) as log:
        checkpoint_decide(cp.pk, dba, "approve")
    assert log == [("resolved", str(cp.pk), {})]


def test_an_escalation_is_announced_as_routed_one_by_one_and_in_a_batch(make_checkpoint):
    PolicyFactory(expiry_action="escalate", escalation_role="dba", escalation_timeout_seconds=60)
    one, two = make_checkpoint(), make_checkpoint()
    with heard(checkpoint_routed) as log:
        assert checkpoint_expire(one.pk, now=one.deadline) == "escalated"
    assert log == [("routed", str(one.pk), {"reason": "escalated"})]
    with heard(checkpoint_routed) as log:
        expire_overdue(now=two.deadline)
    assert log == [("routed", str(two.pk), {"reason": "escalated", "batch": True})]


def test_the_batch_expiry_announces_each_and_the_whole_batch(make_checkpoint):
    cps = [make_checkpoint() for _ in range(3)]
    later = timezone.now() + dt.timedelta(hours=1)
    with heard(checkpoint_resolved, checkpoints_resolved) as log:
        assert expire_overdue(now=later)["expired"] == 3
    ids = sorted(str(cp.pk) for cp in cps)
    assert sorted(entry[1] for entry in log[:3]) == ids
    assert all(entry[0] == "resolved" and entry[2] == {"batch": True} for entry in log[:3])
    assert log[3] == ("resolved_batch", ids, {})
