"""A checkpoint that passes its SLA undecided is marked breached at that moment: once, with an
audit event and the `checkpoint_sla_breached` signal; a decision in time is never marked. The
deadline timer marks it when it falls due; a decision, expiry or cancellation that comes before
the timer or the sweep did marks it in its own transaction, so none is lost."""

from __future__ import annotations

import datetime as dt

import pytest

from approvals.deadlines import DeadlineTimer
from approvals.models import Checkpoint
from approvals.signals import checkpoint_sla_breached
from approvals.sweeps import expire_overdue, mark_sla_breaches
from approvals.transitions import (
    checkpoint_cancel,
    checkpoint_decide,
    checkpoint_expire,
    checkpoint_sla_breach,
)
from audit.events import Actor
from audit.models import AuditEvent
from hitlportal.sweeps import run_all
from notifications.models import Event, Notice
from oversight import analytics as metrics
from tests.factories import PolicyFactory
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


def verbs(cp) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(cp.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )


def counted_as_breached(cp) -> bool:
    """What the dashboard and the exports say (`oversight.analytics`)."""
    return metrics.with_times(Checkpoint.objects.filter(pk=cp.pk)).get().sla_breached


@pytest.mark.parametrize("outcome", ["approve", "reject"])
def test_a_decision_after_the_sla_before_any_sweep_marks_it_once(
    policies, bot, people, heard, outcome
):
    with at(0):
        cp = request_one(bot)
    with at(61):  # past the SLA (60 s); no timer, no sweep ran
        checkpoint_decide(cp.pk, people["rita"], outcome, comment="late")
    cp.refresh_from_db()
    assert cp.sla_breached_at == T0 + dt.timedelta(seconds=61)
    assert heard == [(cp.pk, False)]
    (data,) = breach_events(cp)
    assert data["late_by_seconds"] == 1 and data["role"] == "ops"
    # marked while still pending, before the vote that resolved it
    assert verbs(cp) == [
        "checkpoint.requested",
        "checkpoint.sla_breached",
        "decision.recorded",
        f"checkpoint.{cp.status}",
    ]
    assert Notice.objects.filter(checkpoint=cp, event=Event.SLA_BREACHED).count() == 1
    assert counted_as_breached(cp)
    with at(120):
        assert run_all()["sla"] == {"breached": 0}
        assert checkpoint_sla_breach(cp.pk) is False
    assert len(breach_events(cp)) == 1 and len(heard) == 1


def test_a_vote_short_of_its_quorum_after_the_sla_marks_it(policies, bot, people, heard):
    PolicyFactory(
        name="purges: two of ops",
        match_tool="purge_*",
        stages=[{"role": "ops", "approvals": 2}],
        sla_seconds=60,
    )
    with at(0):
        cp = request_one(bot, tool="purge_files")
    assert cp.approvals_needed == 2
    with at(70):
        assert not checkpoint_decide(cp.pk, people["rita"], "approve").resolved
    assert len(breach_events(cp)) == 1 and heard == [(cp.pk, False)]
    with at(80):
        assert checkpoint_decide(cp.pk, people["raj"], "approve").resolved
    assert len(breach_events(cp)) == 1 and heard == [(cp.pk, False)]


def test_a_decision_exactly_at_the_due_time_is_in_time(policies, bot, people, heard):
    with at(0):
        cp = request_one(bot)
    with at(60):
        checkpoint_decide(cp.pk, people["rita"], "approve")
    assert breach_events(cp) == [] and heard == [] and not counted_as_breached(cp)


def test_a_cancellation_after_the_sla_marks_it(policies, bot, heard):
    with at(0):
        cp = request_one(bot)
    with at(90):
        checkpoint_cancel(cp.pk, Actor.for_agent(bot), reason="not needed")
    assert verbs(cp)[-2:] == ["checkpoint.sla_breached", "checkpoint.cancelled"]
    assert heard == [(cp.pk, False)] and counted_as_breached(cp)


@pytest.mark.parametrize("how", ["one", "batch"])
def test_an_expiry_with_the_sla_equal_to_the_deadline_marks_the_breach(policies, bot, heard, how):
    """The deadline timer calls only the expiry: the breach must not be lost to it."""
    with at(0):
        cp = request_one(bot, expires_in=60)
    assert cp.deadline == cp.sla_due_at
    with at(60.5):
        if how == "one":
            assert checkpoint_expire(cp.pk) == "expired"
        else:
            assert expire_overdue()["expired"] == 1
    cp.refresh_from_db()
    assert cp.status == Checkpoint.Status.EXPIRED
    assert cp.sla_breached_at == T0 + dt.timedelta(seconds=60.5)
    assert verbs(cp)[-2:] == ["checkpoint.sla_breached", "checkpoint.expired"]
    assert heard == [(cp.pk, how == "batch")]
    assert counted_as_breached(cp)
    with at(120):
        assert run_all()["sla"] == {"breached": 0}
    assert len(breach_events(cp)) == 1


def test_an_escalation_after_the_sla_marks_it(policies, bot, heard):
    PolicyFactory(
        name="drops: ops, then a DBA",
        match_tool="drop_*",
        stages=[{"role": "ops", "approvals": 1}],
        expiry_action="escalate",
        escalation_role="dba",
        sla_seconds=60,
    )
    with at(0):
        cp = request_one(bot, tool="drop_table", expires_in=120)
    with at(121):
        assert checkpoint_expire(cp.pk) == "escalated"
    cp.refresh_from_db()
    assert cp.status == Checkpoint.Status.PENDING and cp.current_role == "dba"
    assert verbs(cp)[-2:] == ["checkpoint.sla_breached", "checkpoint.escalated"]
    assert heard == [(cp.pk, False)]


def test_the_deadline_timer_wakes_at_the_sla_due_time_and_marks_it(policies, bot, heard):
    """No sweep: the timer alone marks the breach when the SLA falls due, long before the
    deadline."""
    timer = DeadlineTimer("t", poll=3600, lease=7200)
    with at(0):
        cp = request_one(bot, expires_in=3600)
    with at(30):
        assert timer.tick() == 30  # sleeps until the SLA due time, not the deadline
        assert breach_events(cp) == []
    with at(60.25):
        assert timer.tick() == 0.0  # handled something: look again at once
    cp.refresh_from_db()
    assert cp.status == Checkpoint.Status.PENDING
    assert cp.sla_breached_at == T0 + dt.timedelta(seconds=60.25)
    assert heard == [(cp.pk, True)] and len(breach_events(cp)) == 1
    assert Notice.objects.filter(checkpoint=cp, event=Event.SLA_BREACHED).count() == 1
    with at(61):
        assert timer.tick() == 3600 - 61  # next: the deadline (the breach is marked)
        assert run_all()["sla"] == {"breached": 0}
    assert len(breach_events(cp)) == 1
