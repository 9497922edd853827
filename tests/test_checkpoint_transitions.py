"""Every allowed and forbidden checkpoint transition, with the audit events each writes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from agents.models import Run
from approvals.models import Checkpoint, Decision
from approvals.transitions import (
    checkpoint_cancel,
    checkpoint_claim,
    checkpoint_decide,
    checkpoint_expire,
    checkpoint_release,
)
from audit.events import Actor
from audit.models import AuditEvent
from core.canonical import action_sha256
from core.exceptions import Conflict, InvalidInput, NotAllowed
from tests.factories import PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db


def events(cp) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(target_id=str(cp.pk)).order_by("pk")
    )  # insert order: seqs come later


def verbs(cp) -> list[str]:
    return [e.verb for e in events(cp)]


def test_it_requests_with_routing_and_audit(make_checkpoint):
    cp = make_checkpoint(risk="high", summary="s", context={"request": "clean up"})
    assert cp.status == "pending"
    assert cp.stages == [{"role": "ops", "approvals": 1}]
    assert cp.policy is None
    assert Run.objects.get(pk=cp.run_id).status == Run.Status.WAITING
    (ev,) = events(cp)
    assert ev.verb == "checkpoint.requested"
    assert ev.actor_type == "agent" and ev.actor_label == "bot"
    assert ev.data["action_sha256"] == action_sha256(cp.action)
    assert ev.data["policy"] is None
    assert ev.data["routing"] == ["no policy matched: default role and timeout"]
    assert abs((cp.deadline - cp.created_at).total_seconds() - 1800) < 1


def test_it_routes_by_first_matching_policy_and_records_it(make_checkpoint):
    PolicyFactory(
        name="late", priority=50, match_tool="delete_*", stages=[{"role": "ops", "approvals": 1}]
    )
    first = PolicyFactory(
        name="sql",
        priority=10,
        match_tool="delete_*",
        min_risk="high",
        stages=[{"role": "dba", "approvals": 2}],
        timeout_seconds=60,
    )
    cp = make_checkpoint(risk="critical")
    assert cp.policy == first
    assert cp.current_role == "dba" and cp.approvals_needed == 2
    assert abs((cp.deadline - cp.created_at).total_seconds() - 60) < 1
    assert events(cp)[0].data["policy"] == "sql"
    low = make_checkpoint(risk="low")
    assert low.policy.name == "late"


def test_it_lets_a_role_hint_add_review_but_never_remove_it(make_checkpoint, dba):
    cp = make_checkpoint(role_hint="dba")
    assert [s["role"] for s in cp.stages] == ["ops", "dba"]
    # (a request is one transaction: the refusal rolls it back whole)
    with pytest.raises(InvalidInput, match="not a review role") as refused, transaction.atomic():
        make_checkpoint(role_hint="nobody-has-this-role")
    assert refused.value.field == "role_hint"
    assert Checkpoint.objects.count() == 1


def test_it_approves_and_records_decision(make_checkpoint, reviewer):
    cp = make_checkpoint()
    result = checkpoint_decide(cp.pk, reviewer, "approve", comment="ok", channel="api")
    cp.refresh_from_db()
    assert result.resolved and cp.status == "approved"
    assert cp.resolved_by == reviewer and cp.resolved_at is not None
    assert cp.final_action == cp.action
    assert cp.final_action_sha256 == action_sha256(cp.action)
    decision = Decision.objects.get(checkpoint=cp)
    assert (decision.outcome, decision.channel, decision.role) == ("approve", "api", "ops")
    assert verbs(cp)[-2:] == ["decision.recorded", "checkpoint.approved"]
    recorded = events(cp)[-2]
    assert recorded.actor_label == "rita"
    assert recorded.data["outcome"] == "approve" and recorded.data["comment"] == "ok"


def test_it_rejects_only_with_a_reason(make_checkpoint, reviewer):
    cp = make_checkpoint()
    with pytest.raises(InvalidInput) as exc:
        checkpoint_decide(cp.pk, reviewer, "reject", comment="  ")
    assert exc.value.field == "comment"
    assert not Decision.objects.exists()
    checkpoint_decide(cp.pk, reviewer, "reject", comment="path is production")
    cp.refresh_from_db()
    assert cp.status == "rejected" and cp.resolution_reason == "path is production"
    assert events(cp)[-1].verb == "checkpoint.rejected"
    assert events(cp)[-1].data["reason"] == "path is production"


def test_it_approves_with_edits_keeping_json_types(make_checkpoint, reviewer):
    cp = make_checkpoint(action={"tool": "delete_files", "args": {"paths": ["a", "b"], "n": 2}})
    edited = {"args": {"paths": ["a"], "n": 1, "dry_run": False}}
    checkpoint_decide(cp.pk, reviewer, "modify", action=edited)
    cp.refresh_from_db()
    assert cp.status == "approved"
    assert cp.final_action == {
        "tool": "delete_files",
        "args": {"paths": ["a"], "n": 1, "dry_run": False},
    }
    assert cp.action["args"]["n"] == 2  # the original stays as proposed
    assert cp.final_action_sha256 == action_sha256(cp.final_action)
    assert events(cp)[-1].data["edited"] is True
    assert events(cp)[-2].data["edited_action"]["args"]["n"] == 1


@pytest.mark.parametrize(
    ("action", "field"),
    [(None, "action"), ({"args": "x"}, "action"), ({"tool": "rm_rf", "args": {}}, "action")],
)
def test_it_refuses_malformed_edits(make_checkpoint, reviewer, action, field):
    cp = make_checkpoint()
    with pytest.raises(InvalidInput) as exc:
        checkpoint_decide(cp.pk, reviewer, "modify", action=action)
    assert exc.value.field == field
    cp.refresh_from_db()
    assert cp.status == "pending" and not Decision.objects.exists()


def test_it_answers_questions_within_their_options(make_checkpoint, reviewer):
    cp = make_checkpoint(kind="question", options=[{"value": "eu"}, {"value": "us"}])
    with pytest.raises(InvalidInput):
        checkpoint_decide(cp.pk, reviewer, "approve")
    with pytest.raises(InvalidInput):
        checkpoint_decide(cp.pk, reviewer, "answer", answer="asia")
    checkpoint_decide(cp.pk, reviewer, "answer", answer="eu")
    cp.refresh_from_db()
    assert (cp.status, cp.answer) == ("answered", "eu")
    assert events(cp)[-1].verb == "checkpoint.answered"


def test_it_refuses_answers_on_approvals(make_checkpoint, reviewer):
    cp = make_checkpoint()
    with pytest.raises(InvalidInput):
        checkpoint_decide(cp.pk, reviewer, "answer", answer="yes")
    with pytest.raises(InvalidInput):
        checkpoint_decide(cp.pk, reviewer, "launch")


@pytest.mark.parametrize("outcome", ["approve", "reject", "modify"])
def test_it_refuses_any_decision_once_resolved_naming_the_winner(
    make_checkpoint, reviewer, reviewer2, outcome
):
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")
    with pytest.raises(Conflict) as exc:
        checkpoint_decide(cp.pk, reviewer2, outcome, comment="no", action={"args": {}})
    assert exc.value.status == "approved" and exc.value.winner == "rita"
    assert Decision.objects.filter(checkpoint=cp).count() == 1


def test_it_needs_a_quorum_of_the_same_action(make_checkpoint, reviewer, reviewer2):
    PolicyFactory(stages=[{"role": "ops", "approvals": 2}])
    third = UserFactory(username="ron", roles=["ops"])
    cp = make_checkpoint()
    first = checkpoint_decide(cp.pk, reviewer, "approve")
    assert not first.resolved
    cp.refresh_from_db()
    assert cp.status == "pending"
    # An edit changes what is being approved: the earlier approval no longer counts.
    edit = checkpoint_decide(cp.pk, reviewer2, "modify", action={"args": {"paths": []}})
    assert not edit.resolved
    done = checkpoint_decide(cp.pk, third, "approve")
    assert done.resolved
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.final_action["args"] == {"paths": []}
    assert cp.resolved_by == third


def test_it_refuses_a_second_vote_by_the_same_reviewer(make_checkpoint, reviewer):
    PolicyFactory(stages=[{"role": "ops", "approvals": 2}])
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")
    with pytest.raises(Conflict, match="already voted"):
        checkpoint_decide(cp.pk, reviewer, "approve")
    assert Decision.objects.filter(checkpoint=cp).count() == 1


def test_it_walks_stages_in_order(make_checkpoint, reviewer, dba):
    PolicyFactory(stages=[{"role": "ops", "approvals": 1}, {"role": "dba", "approvals": 1}])
    cp = make_checkpoint()
    with pytest.raises(NotAllowed):
        checkpoint_decide(cp.pk, dba, "approve")  # not the dba's turn yet
    r = checkpoint_decide(cp.pk, reviewer, "approve")
    assert r.stage_advanced and not r.resolved
    cp.refresh_from_db()
    assert (cp.status, cp.stage, cp.current_role) == ("pending", 1, "dba")
    assert events(cp)[-1].verb == "checkpoint.stage_advanced"
    with pytest.raises(NotAllowed):
        checkpoint_decide(cp.pk, reviewer, "approve")  # ops is done; dba decides now
    checkpoint_decide(cp.pk, dba, "approve")
    cp.refresh_from_db()
    assert cp.status == "approved"


def test_it_lets_one_rejection_end_a_quorum(make_checkpoint, reviewer, reviewer2):
    PolicyFactory(stages=[{"role": "ops", "approvals": 2}])
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")
    checkpoint_decide(cp.pk, reviewer2, "reject", comment="no")
    cp.refresh_from_db()
    assert cp.status == "rejected"


def test_it_refuses_reviewers_outside_the_role(make_checkpoint, dba, manager):
    cp = make_checkpoint()
    for user in (dba, manager):
        with pytest.raises(NotAllowed):
            checkpoint_decide(cp.pk, user, "approve")
        with pytest.raises(NotAllowed):
            checkpoint_claim(cp.pk, user)
    assert not Decision.objects.exists()
    assert verbs(cp) == ["checkpoint.requested"]


def test_it_claims_releases_and_blocks_others(make_checkpoint, reviewer, reviewer2):
    cp = make_checkpoint()
    checkpoint_claim(cp.pk, reviewer)
    cp.refresh_from_db()
    assert cp.claimed_by == reviewer and cp.claim_is_active()
    with pytest.raises(Conflict) as exc:
        checkpoint_claim(cp.pk, reviewer2)
    assert exc.value.winner == "rita"
    with pytest.raises(Conflict, match="claimed by rita"):
        checkpoint_decide(cp.pk, reviewer2, "approve")
    with pytest.raises(NotAllowed):
        checkpoint_release(cp.pk, reviewer2)
    checkpoint_release(cp.pk, reviewer)
    checkpoint_claim(cp.pk, reviewer2)
    assert verbs(cp)[1:] == ["checkpoint.claimed", "checkpoint.released", "checkpoint.claimed"]
    assert events(cp)[2].data == {"from": "rita"}


def test_it_lets_an_expired_claim_be_taken_over(make_checkpoint, reviewer, reviewer2):
    cp = make_checkpoint()
    checkpoint_claim(cp.pk, reviewer, lease_seconds=1)
    Checkpoint.objects.filter(pk=cp.pk).update(
        claim_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    checkpoint_claim(cp.pk, reviewer2)
    cp.refresh_from_db()
    assert cp.claimed_by == reviewer2


def test_it_lets_managers_reassign(make_checkpoint, reviewer, reviewer2, manager):
    cp = make_checkpoint()
    checkpoint_claim(cp.pk, reviewer)
    checkpoint_release(cp.pk, manager, reassign_to=reviewer2)
    cp.refresh_from_db()
    assert cp.claimed_by == reviewer2
    ev = events(cp)[-1]
    assert ev.verb == "checkpoint.reassigned" and ev.data == {"from": "rita", "to": "raj"}
    with pytest.raises(NotAllowed):
        checkpoint_release(cp.pk, reviewer2, reassign_to=reviewer)


def test_releasing_an_unclaimed_checkpoint_changes_nothing(make_checkpoint, reviewer, manager):
    cp = make_checkpoint()
    before = (cp.version, verbs(cp))
    checkpoint_release(cp.pk, manager)
    cp.refresh_from_db()
    assert (cp.version, verbs(cp)) == before  # not a change: no version bump, no event
    checkpoint_claim(cp.pk, reviewer)
    checkpoint_release(cp.pk, manager, reassign_to=reviewer)  # to whoever holds it already
    assert verbs(cp)[-1] == "checkpoint.claimed"
    checkpoint_release(cp.pk, manager)
    assert verbs(cp)[-1] == "checkpoint.released"


def test_it_refuses_to_claim_a_resolved_checkpoint(make_checkpoint, reviewer, reviewer2):
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")
    with pytest.raises(Conflict) as exc:
        checkpoint_claim(cp.pk, reviewer2)
    assert exc.value.status == "approved"


def test_it_expires_overdue_with_a_reason(make_checkpoint, reviewer):
    cp = make_checkpoint(expires_in=60)
    with pytest.raises(Conflict, match="not passed"):
        checkpoint_expire(cp.pk)
    later = cp.deadline + dt.timedelta(seconds=1)
    assert checkpoint_expire(cp.pk, now=later) == "expired"
    cp.refresh_from_db()
    assert cp.status == "expired" and "auto-rejected" in cp.resolution_reason
    ev = events(cp)[-1]
    assert ev.verb == "checkpoint.expired" and ev.actor_type == "system"
    assert "auto-rejected" in ev.data["reason"]
    with pytest.raises(Conflict) as exc:
        checkpoint_decide(cp.pk, reviewer, "approve")
    assert exc.value.winner == "expiry"


def test_it_refuses_decisions_after_the_deadline(make_checkpoint, reviewer):
    cp = make_checkpoint()
    Checkpoint.objects.filter(pk=cp.pk).update(deadline=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(Conflict, match="deadline"):
        checkpoint_decide(cp.pk, reviewer, "approve")
    assert not Decision.objects.exists()


def test_it_escalates_once_then_expires(make_checkpoint, dba):
    PolicyFactory(
        stages=[{"role": "ops", "approvals": 1}],
        expiry_action="escalate",
        escalation_role="dba",
        escalation_timeout_seconds=120,
    )
    cp = make_checkpoint()
    now = cp.deadline + dt.timedelta(seconds=1)
    assert checkpoint_expire(cp.pk, now=now) == "escalated"
    cp.refresh_from_db()
    assert (cp.status, cp.current_role, cp.escalated) == ("pending", "dba", True)
    assert cp.deadline == now + dt.timedelta(seconds=120)
    assert events(cp)[-1].verb == "checkpoint.escalated"
    assert checkpoint_expire(cp.pk, now=cp.deadline) == "expired"


def test_it_cancels_pending_only(make_checkpoint, reviewer, agent):
    cp = make_checkpoint()
    checkpoint_cancel(cp.pk, Actor.for_agent(agent), reason="no longer needed")
    cp.refresh_from_db()
    assert cp.status == "cancelled" and cp.resolution_reason == "no longer needed"
    assert events(cp)[-1].verb == "checkpoint.cancelled"
    with pytest.raises(Conflict):
        checkpoint_cancel(cp.pk, Actor.for_agent(agent))
    with pytest.raises(Conflict):
        checkpoint_decide(cp.pk, reviewer, "approve")


def test_it_lets_superusers_decide_any_role(make_checkpoint):
    admin = UserFactory(username="root", is_superuser=True)
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, admin, "approve")
    cp.refresh_from_db()
    assert cp.status == "approved"


def test_a_superuser_in_the_managers_group_never_decides(make_checkpoint):
    boss = UserFactory(username="boss", is_superuser=True, roles=["managers"])
    cp = make_checkpoint()
    with pytest.raises(NotAllowed):
        checkpoint_decide(cp.pk, boss, "approve")
    cp.refresh_from_db()
    assert cp.status == "pending" and not Decision.objects.filter(checkpoint=cp).exists()


def test_it_refuses_a_vote_on_a_version_the_reviewer_did_not_see(
    make_checkpoint, reviewer, reviewer2
):
    """Quorum of two: rita loads the proposal, raj edits it, rita's approve must not count
    for raj's version."""
    PolicyFactory(stages=[{"role": "ops", "approvals": 2}])
    cp = make_checkpoint(action={"tool": "delete_files", "args": {"paths": ["/tmp/a.log"]}})
    seen_by_rita = action_sha256(cp.action)
    checkpoint_decide(cp.pk, reviewer2, "modify", action={"args": {"paths": ["/etc/passwd"]}})
    with pytest.raises(Conflict, match="edited by raj") as exc:
        checkpoint_decide(cp.pk, reviewer, "approve", seen_action_sha256=seen_by_rita)
    assert exc.value.winner == "raj"
    cp.refresh_from_db()
    assert cp.status == "pending"
    assert Decision.objects.filter(checkpoint=cp, reviewer=reviewer).count() == 0
    # Having looked at the edited version, rita's approval counts for it.
    checkpoint_decide(cp.pk, reviewer, "approve", seen_action_sha256=action_sha256(cp.final_action))
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.final_action["args"] == {"paths": ["/etc/passwd"]}


def test_it_needs_another_person_for_each_stage(make_checkpoint, reviewer, dba):
    both = UserFactory(username="bo", roles=["ops", "dba"])
    PolicyFactory(stages=[{"role": "ops", "approvals": 1}, {"role": "dba", "approvals": 1}])
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, both, "approve")
    with pytest.raises(NotAllowed, match="earlier stage"):
        checkpoint_decide(cp.pk, both, "approve")
    cp.refresh_from_db()
    assert (cp.status, cp.stage) == ("pending", 1)
    checkpoint_decide(cp.pk, dba, "approve")
    cp.refresh_from_db()
    assert cp.status == "approved"
