"""Replay runs in the background: the page records a Replay row (audited) and enqueues a
task that writes its progress and result on the row; only the policy's managers may replay
(who may publish or edit it), not everyone who may view it."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.test import Client

from approvals.models import Policy
from approvals.policies import policy_save
from approvals.transitions import checkpoint_decide
from audit.events import Actor
from tests.factories import UserFactory
from tests.policies.conftest import events

pytestmark = pytest.mark.django_db

ETC = {"tool": "delete_files", "args": {"paths": ["/etc/passwd"]}}
LOGS = {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}}


def Replay():  # looked up, so each test fails (not the file) on a tree without the model
    return apps.get_model("approvals", "Replay")


def draft(user, **fields) -> Policy:
    policy = Policy(**{"stages": [{"role": "ops", "approvals": 1}], **fields})
    policy_save(policy, actor=Actor.for_user(user), by=user)
    return policy


def viewer(username: str, roles: list[str]):
    """Staff who may view policies in the admin (the demo grants every group that)."""
    user = UserFactory(username=username, roles=roles)
    user.user_permissions.add(Permission.objects.get(codename="view_policy"))
    return user


def test_the_page_enqueues_a_task_that_records_progress_and_the_result(
    admin_user, request_cp, reviewer, django_capture_on_commit_callbacks, monkeypatch
):
    for i in range(3):
        cp = request_cp(action=LOGS, title=f"logs {i}")
        checkpoint_decide(cp.pk, reviewer, "approve")
    rejected = request_cp(action=ETC, title="etc")
    checkpoint_decide(rejected.pk, reviewer, "reject", comment="never /etc")
    policy = draft(admin_user, name="allow deletes", match_tool="delete_files",
                   outcome="auto_approve")  # fmt: skip
    client = Client()
    client.force_login(admin_user)

    enqueued = []
    monkeypatch.setattr(
        "approvals.policies.replay.enqueue", lambda func, *args, **kw: enqueued.append((func, args))
    )
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/admin/approvals/policy/{policy.pk}/replay/", {"days": 7})
    assert started.status_code == 302
    (run,) = Replay().objects.all()
    assert (run.status, run.days, run.requested_by, run.version.number) == (
        "queued", 7, admin_user, 1,
    )  # fmt: skip
    assert started["Location"].endswith(f"/replay/{run.pk}/")
    (replayed,) = events("policy.replayed", policy)
    assert replayed.actor_label == "ada"
    assert replayed.data == {"version": 1, "days": 7, "replay": str(run.pk)}
    # A task at commit, taking the row's id: nothing ran in the request.
    assert enqueued == [("approvals.tasks.replay_run", (str(run.pk),))]
    queued = client.get(started["Location"]).content.decode()
    assert 'data-status="queued"' in queued and 'http-equiv="refresh"' in queued

    from approvals.tasks import replay_run

    assert replay_run(str(run.pk)) == "done"  # what the worker runs
    run.refresh_from_db()
    assert (run.status, run.progress, run.total, run.attempts) == ("done", 4, 4, 1)
    assert run.result["matched"] == 4 and run.result["would_approve"] == 4
    assert run.result["unsafe_count"] == 1
    assert [e["title"] for e in run.result["unsafe"]] == ["etc"]
    done = client.get(started["Location"]).content.decode()
    assert 'data-status="done"' in done and 'http-equiv="refresh"' not in done
    assert 'data-stat="unsafe"><span class="stat-n">1<' in done

    assert replay_run(str(run.pk)) == "skipped"  # delivered twice: done once
    run.refresh_from_db()
    assert run.attempts == 1 and run.result["matched"] == 4


def test_a_second_request_while_one_runs_joins_it(admin_user):
    policy = draft(admin_user, name="p", match_tool="x", outcome="auto_approve")
    from approvals.policies.replay import replay_request

    first = replay_request(policy, policy.versions.get(), user=admin_user, days=3)
    again = replay_request(policy, policy.versions.get(), user=admin_user, days=3)
    assert first.pk == again.pk and Replay().objects.count() == 1
    assert len(events("policy.replayed", policy)) == 1


def test_only_the_policys_managers_may_replay(admin_user, manager, reviewer):
    from tests.factories import GroupFactory

    GroupFactory(name="dba")
    policy = draft(admin_user, name="p", match_tool="x", outcome="auto_approve")
    rule = draft(
        admin_user, name="standing", condition='tool == "x"', outcome="auto_approve",
        stages=[], standing_role="ops", expires_at="2999-01-01T00:00Z",
    )  # fmt: skip
    people = {
        "ops viewer": viewer("olga", ["ops"]),
        "dba viewer": viewer("dan", ["dba"]),
        "manager": manager,
        "editor": UserFactory(username="ed", roles=[]),
        "publisher": UserFactory(username="pat", roles=[]),
    }
    people["editor"].user_permissions.add(Permission.objects.get(codename="change_policy"))
    people["publisher"].user_permissions.add(Permission.objects.get(codename="publish_policy"))
    allowed = {
        # who may publish or edit it
        policy: {"editor", "publisher"},
        # a standing rule: also the reviewers of its role and managers (`may_manage`)
        rule: {"editor", "publisher", "ops viewer", "manager"},
    }
    for target, may in allowed.items():
        for who, user in people.items():
            client = Client()
            client.force_login(user)
            url = f"/admin/approvals/policy/{target.pk}/replay/"
            expected = 200 if who in may else 403
            assert client.get(url).status_code == expected, (target.name, who)
            posted = client.post(url, {"days": 1}).status_code
            assert posted == (302 if who in may else 403), (target.name, who)
    assert set(Replay().objects.values_list("policy__name", "requested_by__username")) == {
        ("p", "ed"), ("standing", "olga"),
    }  # the first allowed request of each; the others joined it  # fmt: skip
    assert sorted(e.actor_label for e in events("policy.replayed")) == ["ed", "olga"]
