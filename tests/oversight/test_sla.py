"""A checkpoint that passes its SLA undecided is marked breached at that moment: once, with an
audit event and the `checkpoint_sla_breached` signal; a decision in time is never marked."""

from __future__ import annotations

import datetime as dt

import pytest

from approvals.models import AuditEvent, Checkpoint
from approvals.signals import checkpoint_sla_breached
from approvals.sweeps import mark_sla_breaches
from approvals.transitions import checkpoint_decide, checkpoint_sla_breach
from hitlportal.sweeps import run_all
from tests.oversight.conftest import T0, at, request_one

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    got = []

    def receiver(sender, checkpoint, **kwargs):
        got.append((checkpoint.pk, kwargs.get("batch", False)))

    checkpoint_sla_breached.connect(receiver, dispatch_uid="test-sla")
    yield got
    checkpoint_sla_breached.disconnect(dispatch_uid="test-sla")


def breach_events(cp):
    return list(
        AuditEvent.objects.filter(verb="checkpoint.sla_breached", target_id=str(cp.pk)).values_list(
            "data", flat=True
        )
    )


def test_it_sets_the_due_time_from_the_policy_sla(policies, bot):
    with at(0):
        cp = request_one(bot)
    assert cp.sla_seconds == 60
    assert cp.sla_due_at == T0 + dt.timedelta(seconds=60)
    assert cp.tool == "delete_files"
    with at(0):
        no_sla = request_one(bot, title="which?", tool="", kind="question")
    assert no_sla.sla_due_at is None and no_sla.tool == ""


def test_it_marks_the_breach_at_the_moment_once(policies, bot, heard):
    with at(0):
        cp = request_one(bot)
    with at(59.999):
        assert mark_sla_breaches() == {"breached": 0}
    assert heard == [] and breach_events(cp) == []
    with at(60):
        assert mark_sla_breaches() == {"breached": 1}
    cp.refresh_from_db()
    assert cp.sla_breached_at == T0 + dt.timedelta(seconds=60)
    assert cp.status == Checkpoint.Status.PENDING  # a mark, not a status change
    assert heard == [(cp.pk, True)]
    (data,) = breach_events(cp)
    assert data["sla_seconds"] == 60 and data["late_by_seconds"] == 0 and data["role"] == "ops"
    with at(61):
        assert mark_sla_breaches() == {"breached": 0}
        assert checkpoint_sla_breach(cp.pk) is False
    assert len(breach_events(cp)) == 1 and len(heard) == 1


def test_a_decision_in_time_is_never_marked(policies, bot, people, heard):
    with at(0):
        cp = request_one(bot)
    with at(59):
        checkpoint_decide(cp.pk, people["rita"], "approve")
    with at(3600):
        run_all()
        assert checkpoint_sla_breach(cp.pk) is False
    cp.refresh_from_db()
    assert cp.sla_breached_at is None and breach_events(cp) == [] and heard == []


def test_a_scheduler_can_mark_one_checkpoint_when_it_falls_due(policies, bot, heard):
    with at(0):
        cp = request_one(bot)
    with at(30):
        assert checkpoint_sla_breach(cp.pk) is False  # not due yet
    with at(60.5):
        assert checkpoint_sla_breach(cp.pk) is True
    assert heard == [(cp.pk, False)]
    assert breach_events(cp)[0]["late_by_seconds"] == 0.5


def test_the_sweep_marks_before_it_expires(policies, bot, heard):
    """An item whose SLA ends when it expires is marked breached, then expired."""
    with at(0):
        cp = request_one(bot, expires_in=60)
    with at(61):
        result = run_all()
    assert result["sla"] == {"breached": 1} and result["expiry"]["expired"] == 1
    verbs = list(
        AuditEvent.objects.filter(target_id=str(cp.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs[-2:] == ["checkpoint.sla_breached", "checkpoint.expired"]


def test_it_marks_many_in_batches(policies, bot, heard):
    with at(0):
        cps = [request_one(bot, title=f"d{i}") for i in range(7)]
    with at(120):
        assert mark_sla_breaches(batch=3) == {"breached": 7}
        assert mark_sla_breaches(batch=3) == {"breached": 0}
    assert sorted(pk for pk, _ in heard) == sorted(cp.pk for cp in cps)
    assert AuditEvent.objects.filter(verb="checkpoint.sla_breached").count() == 7
