"""Standing rules ("always allow"): proposed from a review page with a pre-filled condition,
a draft until another reviewer of the role or a manager publishes it, listed with its hit
count, expiring, revoked in one click; audited."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from approvals import policies
from approvals.models import Policy
from approvals.policies.conditions import request_facts
from core.exceptions import NotAllowed
from tests.factories import UserFactory
from tests.policies.conftest import events

pytestmark = pytest.mark.django_db

PATHS = {"tool": "delete_files", "args": {"paths": ["/var/log/a.log", "/var/log/b.log"]}}


def propose(client, user, cp, **fields):
    client.force_login(user)
    data = {
        "condition": policies_condition(cp),
        "days": "30",
        "reason": "routine clean-up",
        **fields,
    }
    return client.post(f"/admin/approvals/checkpoint/{cp.pk}/propose-rule/", data)


def policies_condition(cp) -> str:
    from approvals.policies.conditions import suggest_condition

    return suggest_condition(agent_slug=cp.agent.slug, action=cp.action)


def test_the_review_page_prefills_the_condition_from_the_request(client, reviewer, request_cp):
    cp = request_cp(action=PATHS)
    client.force_login(reviewer)
    page = client.get(f"/admin/approvals/checkpoint/{cp.pk}/review/").content.decode()
    assert 'id="propose-rule"' in page
    assert "size(args.paths) &lt;= 2" in page and "startsWith(&quot;/var/log/&quot;)" in page
    # No riskier than the request it comes from (medium: risk_level 1).
    assert "risk_level &lt;= 1" in page


def test_a_proposed_rule_is_a_draft_that_approves_nothing(client, reviewer, request_cp):
    cp = request_cp(action=PATHS)
    response = propose(client, reviewer, cp)
    assert response.status_code == 302 and response["Location"].endswith("/policy/standing/")
    rule = Policy.objects.get(standing_role="ops")
    assert (rule.outcome, rule.live_version, rule.proposed_from) == ("auto_approve", None, cp)
    assert rule.name == "Always allow delete_files for bot"
    assert abs((rule.expires_at - timezone.now()) - dt.timedelta(days=30)) < dt.timedelta(minutes=1)
    (proposed,) = events("policy.proposed", rule)
    assert proposed.actor_label == "rita" and proposed.data["version"] == 1
    assert request_cp(action=PATHS).status == "pending"


def test_it_needs_a_second_person_of_the_role_or_a_manager(
    client, reviewer, reviewer2, manager, dba, request_cp
):
    cp = request_cp(action=PATHS)
    propose(client, reviewer, cp)
    rule = Policy.objects.get(standing_role="ops")

    with pytest.raises(NotAllowed, match="Four-eyes"):
        policies.policy_publish(rule, user=reviewer)  # the proposer
    with pytest.raises(NotAllowed):
        policies.policy_publish(rule, user=dba)  # another role
    client.force_login(reviewer)
    client.post(f"/admin/approvals/policy/{rule.pk}/publish/", {"version": "1"})
    rule.refresh_from_db()
    assert rule.live_version is None

    client.force_login(reviewer2)
    page = client.get("/admin/approvals/policy/standing/").content.decode()
    assert "data-publish" in page
    client.post(f"/admin/approvals/policy/{rule.pk}/publish/", {"version": "1", "next": "/x"})
    rule.refresh_from_db()
    assert rule.live_version.number == 1 and rule.published_by == reviewer2
    assert events("policy.published", rule)[0].actor_label == "raj"

    auto = request_cp(action=PATHS)
    assert auto.status == "approved"
    assert auto.decisions.get().policy_version == rule.live_version
    # Narrower than the request it came from: more paths, or another directory, go to people.
    wider = {"tool": "delete_files", "args": {"paths": ["/var/log/a", "/var/log/b", "/var/log/c"]}}
    assert request_cp(action=wider).status == "pending"
    assert request_cp(action={"tool": "delete_files", "args": {"paths": ["/etc/x"]}}).status == (
        "pending"
    )

    client.force_login(manager)
    listed = client.get("/admin/approvals/policy/standing/").content.decode()
    assert f'id="rule-{rule.pk}" data-state="live"' in listed
    assert "<td data-hits>1" in listed


def test_a_manager_may_publish_it(client, reviewer, manager, request_cp):
    propose(client, reviewer, request_cp(action=PATHS))
    rule = Policy.objects.get(standing_role="ops")
    policies.policy_publish(rule, user=manager)
    assert rule.live_version is not None


def test_it_expires(client, reviewer, reviewer2, request_cp):
    cp = request_cp(action=PATHS)
    propose(client, reviewer, cp, days="1")
    rule = Policy.objects.get(standing_role="ops")
    policies.policy_publish(rule, user=reviewer2)

    def outcome(at):
        facts = request_facts(
            agent_slug="bot", action=PATHS, kind="approval", risk="medium", now=at
        )
        route = policies.route(
            agent_slug="bot", tool="delete_files", kind="approval", risk="medium", facts=facts,
            now=at,
        )  # fmt: skip
        return route.outcome

    assert outcome(timezone.now()) == "auto_approve"
    assert outcome(timezone.now() + dt.timedelta(days=1, minutes=1)) == "route"
    rule.refresh_from_db()
    from approvals.policies.pages import state_of

    assert state_of(rule, timezone.now() + dt.timedelta(days=2)) == "expired"


def test_it_is_revoked_in_one_click(client, reviewer, reviewer2, request_cp):
    propose(client, reviewer, request_cp(action=PATHS))
    rule = Policy.objects.get(standing_role="ops")
    policies.policy_publish(rule, user=reviewer2)
    client.force_login(reviewer)  # the proposer may take it back
    response = client.post(
        f"/admin/approvals/policy/{rule.pk}/revoke/", {"next": "/admin/approvals/policy/standing/"}
    )
    assert response["Location"] == "/admin/approvals/policy/standing/"
    rule.refresh_from_db()
    assert rule.live_version is None
    assert events("policy.revoked", rule)[0].actor_label == "rita"
    assert request_cp(action=PATHS).status == "pending"


def test_only_a_reviewer_of_the_role_may_propose_and_the_condition_must_compile(
    client, reviewer, dba, request_cp
):
    cp = request_cp(action=PATHS)
    assert propose(client, dba, cp).status_code == 404  # not in dba's queue at all
    bad = propose(client, reviewer, cp, condition="args.paths.all(p, p.startsWith(1))")
    assert bad.status_code == 400
    assert "no matching overload" in bad.content.decode()
    too_long = propose(client, reviewer, cp, days="400")
    assert too_long.status_code == 400
    assert not Policy.objects.filter(standing_role="ops").exists()


def test_the_requester_cannot_propose_a_rule_for_their_own_request(client, agent, request_cp):
    owner = UserFactory(username="owen", roles=["ops"])
    agent.owner = owner
    agent.save()
    response = propose(client, owner, request_cp(action=PATHS))
    assert response.status_code == 403
    assert not Policy.objects.exists()


@pytest.mark.parametrize(
    "stricter, ask",
    [
        # policy sends critical deletes to two DBAs
        (
            {"match_tool": "delete_files", "min_risk": "critical",
             "stages": [{"role": "dba", "approvals": 2}]},
            {"risk": "critical"},
        ),
        # policy wants two ops reviewers for high risk
        (
            {"match_tool": "delete_files", "min_risk": "high",
             "stages": [{"role": "ops", "approvals": 2}]},
            {"risk": "high"},
        ),
        # the agent asks a DBA to look too: a second stage
        ({}, {"role_hint": "dba"}),
    ],
    ids=["dba-x2", "ops-x2", "role-hint"],
)  # fmt: skip
def test_a_rule_approves_only_what_one_reviewer_of_its_role_could_have(
    client, reviewer, reviewer2, dba, publish, request_cp, stricter, ask, settings
):
    settings.HITL_STEP_UP_RISK = ""  # the route alone decides here (step-up: the next test)
    UserFactory(username="dan", roles=["dba"])
    if stricter:
        publish(name="stricter", **stricter)
    cp = request_cp(action=PATHS)  # medium risk, no policy: one ops reviewer
    assert (cp.current_role, cp.approvals_needed) == ("ops", 1)
    # Proposed without the pre-filled risk bound: the authority test alone must hold.
    assert "risk_level" not in policies_condition(cp)
    propose(client, reviewer, cp)
    rule = Policy.objects.get(standing_role="ops")
    policies.policy_publish(rule, user=reviewer2)

    wider = request_cp(action=PATHS, **ask)
    assert wider.status == "pending"
    assert not wider.decisions.exists()
    expected = {
        "dba-x2": [{"role": "dba", "approvals": 2}],
        "ops-x2": [{"role": "ops", "approvals": 2}],
        "role-hint": [{"role": "ops", "approvals": 1}, {"role": "dba", "approvals": 1}],
    }
    assert wider.stages in expected.values()
    if stricter:
        assert wider.policy_version.policy.name == "stricter"
    # What one ops reviewer could have approved alone, it still approves.
    same = request_cp(action=PATHS)
    assert same.status == "approved"
    assert same.decisions.get().policy_version == rule.live_version


def test_a_rule_never_approves_what_needs_a_step_up(
    client, reviewer, reviewer2, request_cp, settings
):
    """One ops reviewer could approve a high-risk request alone, but only with a fresh second
    factor (HITL_STEP_UP_RISK=high): a rule, which has none, leaves it to a person."""
    settings.HITL_STEP_UP_RISK = "high"
    cp = request_cp(action=PATHS)
    propose(client, reviewer, cp, condition='tool == "delete_files"')
    rule = Policy.objects.get(standing_role="ops")
    policies.policy_publish(rule, user=reviewer2)
    risky = request_cp(action=PATHS, risk="high")
    assert (risky.status, risky.stages) == ("pending", [{"role": "ops", "approvals": 1}])
    assert not risky.decisions.exists()
    assert request_cp(action=PATHS).status == "approved"  # medium: the rule approves it


def test_replay_of_a_rule_counts_only_what_it_may_approve(
    client, reviewer, reviewer2, dba, publish, request_cp
):
    from approvals.policies.replay import replay

    publish(
        name="critical to dba",
        match_tool="delete_files",
        min_risk="critical",
        stages=[{"role": "dba", "approvals": 1}],
    )
    cp = request_cp(action=PATHS)
    request_cp(action=PATHS, risk="critical")
    propose(client, reviewer, cp)
    rule = Policy.objects.get(standing_role="ops")
    result = replay(policies.latest_version(rule), days=1)
    # It matches both past requests, but would approve only the one ops could approve.
    assert (result.matched, result.would_approve) == (2, 1)


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_proposing_at_once_get_two_rules(agent, reviewer, reviewer2, request_cp):
    """Both see the same name free; the unique index decides and the other takes the next.
    A free race, then each side holding its transaction open while the other proposes."""
    from tests.test_races import race

    condition = policies_condition(request_cp(action=PATHS))

    def proposal(user):
        cp = request_cp(action=PATHS)
        return lambda: policies.standing_rule_propose(cp, user, condition=condition, days=3)

    for hold in (None, 0, 1):
        results = race(proposal(reviewer), proposal(reviewer2), hold=hold)
        assert [r[0] for r in results] == ["ok", "ok"], results
    base = "Always allow delete_files for bot"
    assert sorted(Policy.objects.values_list("name", flat=True)) == sorted(
        [base] + [f"{base} ({n})" for n in range(2, 7)]
    )
    assert len(events("policy.proposed")) == 6
