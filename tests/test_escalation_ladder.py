"""Escalation ladders: a policy's expiry as ordered steps (ops for 30 min → ops-leads for 2 h →
reject), each step audited and announced; the ladder is snapshotted at request time, so
pending requests keep theirs when the policy changes; today's single escalation is the
one-step ladder. The clock is the transitions' own `now`."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from approvals.models import Policy
from approvals.policies import policy_save
from approvals.transitions import checkpoint_expire, checkpoint_expire_batch
from audit.events import Actor
from audit.models import AuditEvent
from tests.factories import PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db

LADDER = [
    {"role": "ops-leads", "timeout_seconds": 7200},
    {"role": "cto", "timeout_seconds": 600},
]


@pytest.fixture
def roles(db):
    for name in ("ops", "ops-leads", "cto"):
        UserFactory(username=f"{name}-person", roles=[name])


def test_it_climbs_the_ladder_one_step_per_deadline_then_rejects(
    roles, make_checkpoint, django_capture_on_commit_callbacks
):
    policy = PolicyFactory(timeout_seconds=1800, expiry_action="escalate", escalation_ladder=LADDER)
    cp = make_checkpoint()
    start = cp.created_at
    assert cp.escalation_ladder == LADDER and cp.escalation_step == 0
    assert cp.next_escalation == LADDER[0]

    # a minute before the deadline nothing happens
    assert checkpoint_expire_batch(now=start + dt.timedelta(minutes=29))["escalated"] == 0

    # the policy changes meanwhile: this request keeps the ladder it was routed with
    policy.escalation_ladder = [{"role": "cto", "timeout_seconds": 60}]
    policy.save()

    t1 = start + dt.timedelta(minutes=30, seconds=1)
    assert checkpoint_expire_batch(now=t1) == {"expired": 0, "escalated": 1, "skipped": 0}
    cp.refresh_from_db()
    assert (cp.status, cp.current_role, cp.escalation_step) == ("pending", "ops-leads", 1)
    assert cp.deadline == t1 + dt.timedelta(hours=2)

    t2 = cp.deadline + dt.timedelta(seconds=1)
    assert checkpoint_expire(cp.pk, now=t2) == "escalated"  # the one-by-one path, same rule
    cp.refresh_from_db()
    assert (cp.current_role, cp.escalation_step, cp.next_escalation) == ("cto", 2, None)
    assert cp.deadline == t2 + dt.timedelta(minutes=10)

    t3 = cp.deadline + dt.timedelta(seconds=1)
    assert checkpoint_expire_batch(now=t3)["expired"] == 1
    cp.refresh_from_db()
    assert cp.status == "expired" and "after escalation to cto" in cp.resolution_reason

    steps = AuditEvent.objects.filter(verb="checkpoint.escalated", target_id=str(cp.pk))
    assert [(e.data["role"], e.data["step"], e.data["steps"]) for e in steps] == [
        ("ops-leads", 1, 2),
        ("cto", 2, 2),
    ]
    assert AuditEvent.objects.filter(verb="checkpoint.expired", target_id=str(cp.pk)).count() == 1


def test_the_single_escalation_is_the_one_step_ladder(roles, make_checkpoint):
    PolicyFactory(
        timeout_seconds=60,
        expiry_action="escalate",
        escalation_role="ops-leads",
        escalation_timeout_seconds=300,
    )
    cp = make_checkpoint()
    assert cp.escalation_ladder == [{"role": "ops-leads", "timeout_seconds": 300}]
    later = cp.deadline + dt.timedelta(seconds=1)
    assert checkpoint_expire_batch(now=later)["escalated"] == 1
    cp.refresh_from_db()
    assert (cp.current_role, cp.escalated, cp.escalation_role) == ("ops-leads", True, "ops-leads")
    assert checkpoint_expire_batch(now=cp.deadline + dt.timedelta(seconds=1))["expired"] == 1


def test_a_policy_ladder_is_validated_when_saved(roles):
    actor = Actor.system("test")
    cases = [
        ({"escalation_ladder": [{"role": "nobody", "timeout_seconds": 60}]}, "escalation_ladder"),
        ({"escalation_ladder": [{"role": "cto"}]}, "escalation_ladder"),
        ({"escalation_ladder": [{"role": "cto", "timeout_seconds": 0}]}, "escalation_ladder"),
        ({"escalation_ladder": [{"role": "cto", "timeout_seconds": "60"}]}, "escalation_ladder"),
        ({"escalation_ladder": {"role": "cto"}}, "escalation_ladder"),
        ({"escalation_ladder": LADDER, "expiry_action": "reject"}, "expiry_action"),
        ({"escalation_ladder": LADDER, "escalation_role": "cto"}, "escalation_role"),
        ({"escalation_ladder": [], "escalation_role": ""}, "escalation_role"),
    ]
    for fields, field in cases:
        policy = Policy(
            name=f"p{len(Policy.objects.all())}",
            stages=[{"role": "ops", "approvals": 1}],
            **{"expiry_action": "escalate", **fields},
        )
        with pytest.raises(ValidationError) as exc:
            policy_save(policy, actor=actor)
        assert field in exc.value.message_dict, (fields, exc.value.message_dict)
    saved = policy_save(
        Policy(
            name="ok", stages=[{"role": "ops"}], expiry_action="escalate", escalation_ladder=LADDER
        ),
        actor=actor,
    )
    event = AuditEvent.objects.get(verb="policy.created")
    assert event.data["values"]["escalation_ladder"] == LADDER and saved.pk


def test_the_review_page_says_where_it_escalates_next(roles, make_checkpoint, client):
    PolicyFactory(timeout_seconds=1800, expiry_action="escalate", escalation_ladder=LADDER)
    cp = make_checkpoint()
    client.force_login(UserFactory(username="rita", roles=["ops"]))
    page = client.get(f"/admin/approvals/checkpoint/{cp.pk}/review/").content.decode()
    assert "then escalate to ops-leads" in page
    checkpoint_expire_batch(now=timezone.now() + dt.timedelta(hours=1))
    client.force_login(UserFactory(username="lea", roles=["ops-leads"]))
    page = client.get(f"/admin/approvals/checkpoint/{cp.pk}/review/").content.decode()
    assert "then escalate to cto" in page and "step 1 of 2" in page
