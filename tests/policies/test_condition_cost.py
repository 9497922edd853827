"""A condition's cost is bounded before it runs: one that builds strings or lists without
bound is refused at save with a field error; one stored before the check keeps routing, but
is not evaluated on a request where its bound exceeds the limits (and the routing notes say
so), instead of running for minutes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from approvals import policies
from approvals.models import Checkpoint, Policy, PolicyOutcome
from approvals.policies import policy_publish, policy_record, policy_save, table_changed
from audit.events import Actor
from audit.models import AuditEvent
from core.exceptions import InvalidInput
from tests.factories import GroupFactory
from tests.policies.conftest import events

pytestmark = pytest.mark.django_db

# The two conditions: 269 characters that build 67 MB, and one that is cubic in an
# argument (184 s and 15 GB on a 2,000-character string).
CHAIN = '"aaaa"' + '.replace("a","aaaa")' * 12 + ' == ""'
CUBIC = "args.s.replace('a', args.s).replace('a', args.s) == ''"
# Quadratic in a list: the accumulator is copied at every step.
QUADRATIC = "args.l.map(x, x).size() > 0"

ADMITTED = [
    # what the review page suggests for a standing rule
    'agent == "bot" && tool == "delete_files" && args.days <= 7 && args.force == false '
    '&& size(args.paths) <= 2 && args.paths.all(p, p.startsWith("/var/log/") && '
    '!p.contains(".."))',
    'tool == "delete_files" && size(args.paths) <= 20 && '
    'args.paths.all(p, p.startsWith("/var/log/"))',
    'args.db.tables.exists(t, t.name == "orders" && t.rows < 1000) && risk_level >= 2',
    "confidence != null && confidence >= 0.95",
    # a regex over an argument, once the argument is bounded
    'size(args.cmd) <= 1000 && args.cmd.matches("^(ls|cat|grep) [a-z./]+$")',
    'title.matches("^deploy [a-z-]+$") && hour >= 9 && hour < 17',
]


def save(**fields) -> Policy:
    GroupFactory(name="ops")
    policy = Policy(**{"name": "p", "stages": [{"role": "ops", "approvals": 1}], **fields})
    policy_save(policy, actor=Actor.system("test"))
    return policy


@pytest.mark.parametrize("condition", [CHAIN, CUBIC, QUADRATIC])
def test_it_refuses_a_condition_whose_cost_grows_without_bound(condition):
    with pytest.raises(ValidationError) as refused:
        save(condition=condition, outcome=PolicyOutcome.AUTO_APPROVE)
    message = " ".join(refused.value.message_dict["condition"])
    assert "Too expensive" in message and "HITL_CONDITION_MAX" in message
    assert not Policy.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="policy.").exists()


def test_it_refuses_what_it_cannot_bound():
    with pytest.raises(ValidationError) as refused:
        save(condition='args.template.format([title]) == ""')
    assert "cannot be bounded" in " ".join(refused.value.message_dict["condition"])


@pytest.mark.parametrize("condition", ADMITTED)
def test_it_admits_the_conditions_people_write(condition):
    assert save(condition=condition).versions.count() == 1


def test_a_reviewer_proposing_a_standing_rule_gets_the_field_named(request_cp, reviewer):
    cp = request_cp()
    with pytest.raises(InvalidInput) as refused:
        policies.standing_rule_propose(cp, reviewer, condition=CUBIC, days=7)
    assert refused.value.field == "condition" and "Too expensive" in str(refused.value)
    assert not Policy.objects.exists()


def test_the_runtime_stops_comprehensions_where_the_bound_assumes():
    """The bound counts on cel-cpp's comprehension budget (the binding cannot set it)."""
    from approvals.policies.cel_cost import ITERATION_BUDGET
    from approvals.policies.conditions import compile_condition, request_facts

    condition = compile_condition("args.l.all(x, x >= 0)")

    def holds(n: int) -> bool:
        facts = request_facts(
            agent_slug="bot", action={"tool": "t", "args": {"l": list(range(n))}},
            kind="approval", risk="low", now=timezone.now(),
        )  # fmt: skip
        return condition.evaluate(facts)

    assert holds(ITERATION_BUDGET - 1)
    assert not holds(ITERATION_BUDGET)  # "Iteration budget exceeded": no match


def stored_before_the_check(condition: str) -> Policy:
    """A live auto-approval whose condition was saved before conditions were checked for
    cost: the rows a migration from an older version leaves (no validation on the way)."""
    policy = Policy.objects.create(
        name="legacy", condition=condition, outcome=PolicyOutcome.AUTO_APPROVE,
        reason="legacy rule", stages=[],
    )  # fmt: skip
    version = policy_record(policy, None, actor=Actor.system("test"))
    Policy.objects.filter(pk=policy.pk).update(live_version=version)
    table_changed()
    policy.refresh_from_db()  # as a page would load it (publishing checks what it saw)
    return policy


def test_a_stored_condition_over_the_limits_is_not_run_on_a_large_request(request_cp):
    stored_before_the_check(CUBIC)
    # A small request: its bound with this request's sizes is within the limits, it runs.
    small = request_cp(action={"tool": "t", "args": {"s": ""}}, title="small")
    assert small.status == Checkpoint.Status.APPROVED and small.policy.name == "legacy"
    # 500 characters: up to 125 MB for one evaluation (64 MiB allowed): not run, no match,
    # and the request says so; people decide it.
    large = request_cp(action={"tool": "t", "args": {"s": "a" * 500}}, title="large")
    assert large.status == Checkpoint.Status.PENDING and large.policy_version is None
    (requested,) = events("checkpoint.requested", large)
    notes = " ".join(requested.data["routing"])
    assert "condition of legacy v1 not evaluated" in notes and "on this request" in notes


def test_a_stored_condition_over_the_limits_is_flagged_and_cannot_be_published_again(
    admin_client, admin_user
):
    policy = stored_before_the_check(CUBIC)
    page = admin_client.get(f"/admin/approvals/policy/{policy.pk}/change/").content.decode()
    assert 'id="condition-over-limits"' in page and "Too expensive" in page
    policies.policy_revoke(policy, user=admin_user)
    with pytest.raises(InvalidInput, match="Too expensive"):
        policy_publish(policy, user=admin_user, version=policy.versions.get())
    assert Policy.objects.get(pk=policy.pk).live_version is None
