"""Shadow mode records what a rule would have done while people decide, and shows agreement;
replay simulates a draft against a known history and counts what people actually did."""

from __future__ import annotations

import pytest

from approvals.models import Checkpoint, Policy, ShadowMatch
from approvals.policies import policy_save
from approvals.policies.replay import replay, shadow_report
from approvals.transitions import checkpoint_cancel, checkpoint_decide
from audit.events import Actor
from tests.policies.conftest import events

pytestmark = pytest.mark.django_db

LOGS = {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}}
ETC = {"tool": "delete_files", "args": {"paths": ["/etc/passwd"]}}
RESTART = {"tool": "restart", "args": {"service": "nginx"}}


def test_shadow_records_without_deciding_and_shows_agreement(
    publish, request_cp, reviewer, admin_client
):
    rule = publish(
        name="shadow deletes",
        match_tool="delete_files",
        outcome="auto_approve",
        shadow=True,
    )
    agree = request_cp(action=LOGS, title="logs")
    disagree = request_cp(action=ETC, title="etc")
    undecided = request_cp(action=LOGS, title="later")
    untouched = request_cp(action=RESTART, title="restart")

    for cp in (agree, disagree, undecided):
        assert cp.status == "pending" and cp.current_role == "ops"  # people decide
        assert cp.policy_version is None
    assert ShadowMatch.objects.filter(checkpoint=untouched).count() == 0
    assert set(ShadowMatch.objects.values_list("checkpoint_id", "would")) == {
        (agree.pk, "auto_approve"),
        (disagree.pk, "auto_approve"),
        (undecided.pk, "auto_approve"),
    }
    assert events("checkpoint.requested", agree)[0].data["shadow"] == [
        {"policy": "shadow deletes v1", "would": "auto_approve"}
    ]

    checkpoint_decide(agree.pk, reviewer, "approve")
    checkpoint_decide(disagree.pk, reviewer, "reject", comment="never /etc")

    report = shadow_report(rule)
    assert (report.matched, report.agreed, report.disagreed, report.undecided) == (3, 1, 1, 1)
    assert [m.checkpoint_id for m, _ in report.disagreements] == [disagree.pk]

    page = admin_client.get(f"/admin/approvals/policy/{rule.pk}/shadow/").content.decode()
    assert f"/admin/approvals/checkpoint/{disagree.pk}/review/" in page
    assert 'id="agreement">50 %' in page
    review = admin_client.get(f"/admin/approvals/checkpoint/{agree.pk}/review/").content.decode()
    assert "shadow deletes v1" in review and "would have approved it automatically" in review


@pytest.fixture
def history(request_cp, reviewer, reviewer2):
    """A known history: 2 approved, 1 approved with edits, 2 rejected, 1 cancelled, 1 pending
    of delete_files; 2 restarts approved."""
    made = []
    for i in range(2):
        cp = request_cp(action=LOGS, title=f"approved {i}")
        checkpoint_decide(cp.pk, reviewer, "approve")
        made.append(cp)
    edited = request_cp(action=LOGS, title="edited")
    checkpoint_decide(edited.pk, reviewer, "modify", action={"args": {"paths": ["/var/log/b"]}})
    for i in range(2):
        cp = request_cp(action=ETC, title=f"rejected {i}")
        checkpoint_decide(cp.pk, reviewer2, "reject", comment="no")
    cancelled = request_cp(action=LOGS, title="cancelled")
    checkpoint_cancel(cancelled.pk, Actor.system("test"), reason="gone")
    request_cp(action=LOGS, title="pending")
    for i in range(2):
        cp = request_cp(action=RESTART, title=f"restart {i}")
        checkpoint_decide(cp.pk, reviewer, "approve")
    assert Checkpoint.objects.count() == 9
    return made


def draft(admin_user, **fields) -> Policy:
    policy = Policy(**{"stages": [{"role": "ops", "approvals": 1}], **fields})
    policy_save(policy, actor=Actor.for_user(admin_user), by=admin_user)
    return policy


def test_replay_figures_on_a_known_history(
    history, admin_user, admin_client, django_capture_on_commit_callbacks
):
    policy = draft(
        admin_user, name="allow deletes", match_tool="delete_files", outcome="auto_approve"
    )
    result = replay(policy.versions.get(), days=1)
    assert result.checkpoints == 9
    assert result.matched == 7
    assert (result.would_approve, result.would_reject, result.routed_differently) == (7, 0, 7)
    assert dict(result.verdicts) == {
        "approved": 2, "edited": 1, "rejected": 2, "cancelled": 1, "pending": 1,
    }  # fmt: skip
    assert result.unsafe_count == 3
    assert sorted(e.title for e in result.unsafe) == ["edited", "rejected 0", "rejected 1"]

    narrower = draft(
        admin_user,
        name="allow log deletes",
        match_tool="delete_files",
        condition='args.paths.all(p, p.startsWith("/var/log/"))',
        outcome="auto_approve",
    )
    narrow = replay(narrower.versions.get(), days=1)
    assert (narrow.matched, narrow.would_approve, narrow.unsafe_count) == (5, 5, 1)

    # The page starts a replay in the background (run inline here: HITL_Q_SYNC) and shows it.
    with django_capture_on_commit_callbacks(execute=True):
        started = admin_client.post(f"/admin/approvals/policy/{narrower.pk}/replay/", {"days": 1})
    assert started.status_code == 302
    page = admin_client.get(started["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-stat="auto-approved"><span class="stat-n">5<' in html
    assert 'data-stat="unsafe"><span class="stat-n">1<' in html
    assert "/review/" in html  # the edited one, linked
    assert Policy.objects.get(pk=narrower.pk).live_version is None  # replay changes nothing


def test_replay_of_a_deny_rule_and_of_a_routing_change(history, admin_user, publish):
    deny = draft(
        admin_user,
        name="deny etc",
        condition='has(args.paths) && args.paths.exists(p, p.startsWith("/etc/"))',
        outcome="auto_reject",
        reason="never /etc",
    )
    result = replay(deny.versions.get(), days=1)
    assert (result.matched, result.would_reject, result.blocked_count) == (2, 2, 0)
    assert dict(result.verdicts) == {"rejected": 2}

    from tests.factories import GroupFactory

    GroupFactory(name="dba")
    restarts = draft(
        admin_user, name="restarts to dba", match_tool="restart",
        stages=[{"role": "dba", "approvals": 1}],
    )  # fmt: skip
    routed = replay(restarts.versions.get(), days=1)
    assert (routed.matched, routed.would_approve, routed.routed_differently) == (2, 0, 2)
    assert dict(routed.verdicts) == {"approved": 2}

    # The same stages as what routes today: matched, but nothing changes.
    same = draft(admin_user, name="restarts to ops", match_tool="restart")
    unchanged = replay(same.versions.get(), days=1)
    assert (unchanged.matched, unchanged.routed_differently) == (2, 0)
