"""Every change is an immutable version; a draft routes nothing until published; pending
items keep the version that routed them; a published version can be rolled back; the
routing table of a process follows publications; the admin's buttons do the same."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models.deletion import ProtectedError
from django.utils import timezone

from approvals import policies
from approvals.models import Checkpoint, Policy, PolicyVersion
from approvals.policies import policy_publish, policy_revoke, policy_rollback, policy_save, routing
from approvals.policies.conditions import request_facts
from audit.events import Actor
from core.exceptions import Conflict, InvalidInput, NotAllowed
from tests.factories import GroupFactory, UserFactory
from tests.policies.conftest import events

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def roles(db):
    GroupFactory(name="ops")
    GroupFactory(name="dba")


def edit(policy: Policy, user, **changes) -> PolicyVersion | None:
    for name, value in changes.items():
        setattr(policy, name, value)
    return policy_save(policy, actor=Actor.for_user(user), by=user)


def test_every_change_is_a_version_with_who_when_and_the_diff(publish, admin_user):
    policy = publish(name="sql", match_tool="sql_*", timeout_seconds=600)
    v2 = edit(policy, admin_user, timeout_seconds=900, stages=[{"role": "dba", "approvals": 2}])
    assert [v.number for v in policy.versions.all()] == [2, 1]
    assert v2.created_by == admin_user
    assert v2.changes == {
        "timeout_seconds": [600, 900],
        "stages": [[{"role": "ops", "approvals": 1}], [{"role": "dba", "approvals": 2}]],
    }
    assert v2.snapshot["stages"] == [{"role": "dba", "approvals": 2}]
    # Saving without a change is not a version.
    assert edit(policy, admin_user) is None
    assert [e.data["version"] for e in events("policy.created", policy)] == [1]
    assert [e.data["version"] for e in events("policy.updated", policy)] == [2]
    assert events("policy.published", policy)[0].data["version"] == 1


def test_snapshots_hold_every_policy_field_without_a_list_to_keep(publish):
    policy = publish(name="all")
    snapshot = policy.live_version.snapshot
    expected = {f.name for f in Policy._meta.concrete_fields} - set(Policy.STATE_FIELDS)
    assert set(snapshot) == expected
    assert policy.live_version.as_policy().stages == policy.stages


def test_a_draft_routes_nothing_until_published(admin_user, request_cp):
    policy = Policy(name="dba", match_tool="delete_*", stages=[{"role": "dba", "approvals": 1}])
    policy_save(policy, actor=Actor.for_user(admin_user), by=admin_user)

    draft_routed = request_cp()
    assert draft_routed.current_role == "ops"  # the default: the draft routes nothing
    assert draft_routed.policy_version is None

    policy_publish(policy, user=admin_user)
    assert request_cp().current_role == "dba"


def test_pending_items_keep_their_version_and_edits_route_only_new_ones(
    publish, admin_user, request_cp
):
    policy = publish(name="deletes", match_tool="delete_*")
    before = request_cp()
    edit(policy, admin_user, stages=[{"role": "dba", "approvals": 2}])
    # The edit is a draft: still routed by version 1.
    assert request_cp().policy_version.number == 1
    policy_publish(policy, user=admin_user)
    after = request_cp()

    before.refresh_from_db()
    assert (before.policy_version.number, before.current_role, before.stages) == (
        1,
        "ops",
        [{"role": "ops", "approvals": 1}],
    )
    assert (after.policy_version.number, after.current_role, after.approvals_needed) == (
        2,
        "dba",
        2,
    )
    requested = events("checkpoint.requested", after)[0].data
    assert (requested["policy"], requested["policy_version"]) == ("deletes", 2)


def test_a_published_version_can_be_rolled_back_to_an_earlier_one(publish, admin_user, request_cp):
    policy = publish(name="deletes", match_tool="delete_*")
    edit(policy, admin_user, stages=[{"role": "dba", "approvals": 1}])
    policy_publish(policy, user=admin_user)
    assert request_cp().current_role == "dba"

    v1 = policy.versions.get(number=1)
    policy_rollback(policy, user=admin_user, version=v1)

    assert policy.live_version == v1
    assert request_cp().current_role == "ops"
    (event,) = events("policy.rolled_back", policy)
    assert (event.data["version"], event.data["previous"]) == (1, 2)
    assert event.data["changes"]["stages"][1] == [{"role": "ops", "approvals": 1}]
    with pytest.raises(InvalidInput):
        policy_rollback(policy, user=admin_user, version=policy.versions.get(number=2))
    with pytest.raises(Conflict):
        policy_publish(policy, user=admin_user, version=v1)


def test_revoking_stops_routing_at_once(publish, admin_user, request_cp):
    policy = publish(name="deletes", match_tool="delete_*", stages=[{"role": "dba"}])
    policy_revoke(policy, user=admin_user, reason="too broad")
    assert policy.live_version is None
    assert request_cp().current_role == "ops"
    assert events("policy.revoked", policy)[0].data == {"version": 1, "reason": "too broad"}


def test_a_version_that_routed_a_checkpoint_is_kept(publish, request_cp):
    policy = publish(name="deletes", match_tool="delete_*")
    request_cp()
    with pytest.raises(ProtectedError):
        policy.delete()


def test_publishing_is_for_the_publish_permission_and_four_eyes_can_be_required(
    admin_user, reviewer, settings
):
    policy = Policy(name="p", stages=[{"role": "ops", "approvals": 1}])
    policy_save(policy, actor=Actor.for_user(admin_user), by=admin_user)
    with pytest.raises(NotAllowed):
        policy_publish(policy, user=reviewer)

    settings.HITL_POLICY_FOUR_EYES = True
    with pytest.raises(NotAllowed, match="Four-eyes"):
        policy_publish(policy, user=admin_user)
    other = UserFactory(username="otto", is_superuser=True)
    policy_publish(policy, user=other)
    assert policy.live_version.number == 1


def test_a_version_is_validated_again_when_it_goes_live(publish, admin_user):
    policy = publish(name="dba", stages=[{"role": "dba", "approvals": 1}])
    edit(policy, admin_user, timeout_seconds=60)
    GroupFactory(name="dba").permissions.clear()  # dba is no review role any more
    with pytest.raises(InvalidInput, match="not a review role"):
        policy_publish(policy, user=admin_user)


def test_an_auto_reject_policy_wins_over_earlier_allows(publish, request_cp):
    publish(name="allow deletes", priority=1, match_tool="delete_files", outcome="auto_approve")
    publish(
        name="deny etc",
        priority=500,
        condition='args.paths.exists(p, p.startsWith("/etc/"))',
        outcome="auto_reject",
        reason="never under /etc",
    )
    denied = request_cp(action={"tool": "delete_files", "args": {"paths": ["/etc/passwd"]}})
    allowed = request_cp()
    assert (denied.status, denied.resolution_reason) == ("rejected", "never under /etc")
    assert allowed.status == "approved"


def test_a_condition_that_errs_does_not_match_and_the_request_goes_on(publish, request_cp, caplog):
    publish(name="needs paths", condition="size(args.paths) > 0", outcome="auto_approve")
    cp = request_cp(action={"tool": "restart", "args": {"service": "nginx"}})
    assert cp.status == "pending" and cp.policy_version is None
    assert "needs paths v1 did not evaluate" in caplog.text


def test_the_routing_table_follows_publications_and_ignores_rolled_back_ones(publish, admin_user):
    facts = request_facts(
        agent_slug="bot", action={"tool": "t"}, kind="approval", risk="low", now=timezone.now()
    )

    def routed_role() -> str:
        route = policies.route(agent_slug="bot", tool="t", kind="approval", risk="low", facts=facts)
        return route.stages[0]["role"]

    assert routed_role() == "ops"
    table = policies.routing_table()
    assert policies.routing_table() is table  # compiled once, reused
    policy = publish(name="t", match_tool="t", stages=[{"role": "dba", "approvals": 1}])
    assert routed_role() == "dba"
    assert policies.routing_table() is not table

    # A publication inside a transaction that rolls back: its table is never used after.
    try:
        with transaction.atomic():
            policy_revoke(policy, user=admin_user)
            assert routed_role() == "ops"
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert routed_role() == "dba"


def test_a_publication_compiles_only_the_new_condition_not_every_live_one(publish, monkeypatch):
    compiled = []
    real = routing.compile_condition

    def counting(source):
        compiled.append(source)
        return real(source)

    monkeypatch.setattr(routing, "compile_condition", counting)
    for n in range(3):
        publish(name=f"p{n}", match_tool=f"t{n}", condition=f"args.n > {n}")
    policies.routing_table()
    compiled.clear()
    publish(name="p3", match_tool="t3", condition="args.n > 3")
    table = policies.routing_table()
    # validated at save and at publication, compiled for routing: never the three live ones,
    # which came from the earlier table
    assert set(compiled) == {"args.n > 3"}
    assert set(table.compiled) == {f"args.n > {n}" for n in range(4)}
    facts = request_facts(
        agent_slug="bot", action={"tool": "t1", "args": {"n": 5}}, kind="approval",
        risk="low", now=timezone.now(),
    )  # fmt: skip
    route = policies.route(agent_slug="bot", tool="t1", kind="approval", risk="low", facts=facts)
    assert route.policy.name == "p1"  # a reused condition still decides


def test_a_live_condition_that_no_longer_compiles_matches_nothing(publish, caplog):
    policy = publish(
        name="b", match_tool="t", condition="args.n > 1", stages=[{"role": "dba", "approvals": 1}]
    )
    facts = request_facts(
        agent_slug="bot", action={"tool": "t", "args": {"n": 5}}, kind="approval",
        risk="low", now=timezone.now(),
    )  # fmt: skip

    def role() -> str:
        route = policies.route(agent_slug="bot", tool="t", kind="approval", risk="low", facts=facts)
        return route.stages[0]["role"]

    assert role() == "dba"
    version = policy.live_version
    PolicyVersion.objects.filter(pk=version.pk).update(
        snapshot={**version.snapshot, "condition": "args.n >"}  # e.g. after a CEL upgrade
    )
    policies.table_changed()
    assert role() == "ops"  # the default route: the broken policy matches nothing
    assert "does not compile" in caplog.text


def test_a_compile_error_is_a_field_error_at_save_in_the_admin(admin_client, reviewer):
    response = admin_client.post(
        "/admin/approvals/policy/add/",
        {
            "name": "bad",
            "priority": "100",
            "active": "on",
            "condition": "args.paths.all(p, p.startsWith(1))",
            "outcome": "auto_approve",
            "stages": "[]",
            "expiry_action": "reject",
            "escalation_timeout_seconds": "1800",
        },
    )
    assert response.status_code == 200
    assert "no matching overload" in response.content.decode()
    assert not Policy.objects.filter(name="bad").exists()
    assert not PolicyVersion.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"outcome": "auto_reject"}, "reason", "needs a reason"),
        ({"shadow": True}, "shadow", "automatic outcomes"),
        ({"stages": []}, "stages", "non-empty list"),
    ],
)
def test_outcomes_are_validated(fields, field, message):
    from django.core.exceptions import ValidationError

    policy = Policy(**{"name": "p", "stages": [{"role": "ops", "approvals": 1}], **fields})
    with pytest.raises(ValidationError) as exc:
        policies.validate_policy(policy)
    assert message in " ".join(exc.value.message_dict[field])


def test_the_admin_saves_drafts_and_its_buttons_publish_and_roll_back(admin_client, publish):
    policy = publish(name="p", match_tool="delete_*", timeout_seconds=600)
    form = {
        "name": "p",
        "priority": "100",
        "active": "on",
        "match_tool": "delete_*",
        "outcome": "route",
        "stages": '[{"role": "dba", "approvals": 1}]',
        "honour_role_hints": "on",
        "timeout_seconds": "600",
        "expiry_action": "reject",
        "escalation_timeout_seconds": "1800",
    }
    response = admin_client.post(f"/admin/approvals/policy/{policy.pk}/change/", form)
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.live_version.number, policy.versions.count()) == (1, 2)

    page = admin_client.get(f"/admin/approvals/policy/{policy.pk}/change/").content.decode()
    assert "Version 2 is a draft" in page and "Publish version 2" in page

    admin_client.post(f"/admin/approvals/policy/{policy.pk}/publish/", {"version": "2"})
    policy.refresh_from_db()
    assert policy.live_version.number == 2
    admin_client.post(f"/admin/approvals/policy/{policy.pk}/rollback/1/")
    policy.refresh_from_db()
    assert policy.live_version.number == 1
    assert [e.verb for e in events("policy.rolled_back", policy)] == ["policy.rolled_back"]
    assert Checkpoint.objects.count() == 0


def test_a_reviewer_without_the_permission_cannot_publish_from_the_admin(client, reviewer, db):
    from approvals.policies import policy_record

    policy = Policy.objects.create(name="p", stages=[{"role": "ops", "approvals": 1}])
    policy_record(policy, None, actor=Actor.system("test"))
    client.force_login(reviewer)
    response = client.post(f"/admin/approvals/policy/{policy.pk}/publish/", {"version": "1"})
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.live_version is None


@pytest.mark.django_db(transaction=True)
def test_two_saves_of_one_policy_at_once_make_two_versions(admin_user):
    """Each save locks the policy row before numbering its version: a free race, then each
    side holding its transaction open while the other saves."""
    from tests.test_races import race

    policy = Policy(name="p", stages=[{"role": "ops", "approvals": 1}])
    policy_save(policy, actor=Actor.for_user(admin_user), by=admin_user)

    def save(timeout: int):
        def call():
            mine = Policy.objects.get(pk=policy.pk)
            return edit(mine, admin_user, timeout_seconds=timeout, description=str(timeout))

        return call

    for n, hold in enumerate((None, 0, 1)):
        results = race(save(100 + n), save(200 + n), hold=hold)
        assert [r[0] for r in results] == ["ok", "ok"], results
    numbers = sorted(policy.versions.values_list("number", flat=True))
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) == 7  # the first, and one per save
    assert len(events("policy.updated", policy)) == 6


ADMIN_FORM = {
    "name": "bad",
    "priority": "100",
    "active": "on",
    "outcome": "route",
    "stages": '[{"role": "ops", "approvals": 1}]',
    "expiry_action": "reject",
    "escalation_timeout_seconds": "1800",
    "escalation_ladder": "[]",
}
ROLE_IS_A_NAME = '"role" is the name of one review role'


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"stages": '[{"role": ["ops"], "approvals": 1}]'}, "stages"),
        ({"stages": '[{"role": {"name": "ops"}}]'}, "stages"),
        (
            {
                "expiry_action": "escalate",
                "escalation_ladder": '[{"role": {"a": 1}, "timeout_seconds": 60}]',
            },
            "escalation_ladder",
        ),
        (
            {
                "expiry_action": "escalate",
                "escalation_ladder": '[{"role": ["dba"], "timeout_seconds": 60}]',
            },
            "escalation_ladder",
        ),
    ],
    ids=["stage-role-list", "stage-role-object", "ladder-role-object", "ladder-role-list"],
)
def test_a_role_that_is_not_a_name_is_a_field_error_in_the_admin(admin_client, fields, field):
    response = admin_client.post("/admin/approvals/policy/add/", {**ADMIN_FORM, **fields})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert ROLE_IS_A_NAME in " ".join(errors[field])
    assert not Policy.objects.exists() and not PolicyVersion.objects.exists()


@pytest.mark.parametrize("number", ["abc", "1.5", "-1", "", "٣", "99999999999999999999"])
def test_a_version_that_is_not_a_number_is_not_found(admin_client, publish, number):
    policy = publish(name="p")
    edit(policy, policy.published_by, timeout_seconds=60)  # a draft v2 to publish
    response = admin_client.post(
        f"/admin/approvals/policy/{policy.pk}/publish/", {"version": number}
    )
    replayed = admin_client.get(f"/admin/approvals/policy/{policy.pk}/replay/", {"version": number})
    policy.refresh_from_db()
    if number == "":  # no version given: the latest (the draft) is meant
        assert response.status_code == 302 and replayed.status_code == 200
        assert policy.live_version.number == 2
        return
    assert (response.status_code, replayed.status_code) == (404, 404)
    assert policy.live_version.number == 1
    assert len(events("policy.published", policy)) == 1
