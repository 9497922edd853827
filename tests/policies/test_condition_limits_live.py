"""Through the public port of a running portal, with real logins: the admin's policy form and
a reviewer's standing-rule proposal refuse a condition whose cost has no bound (a field
error, nothing saved), and replay is a background task the page follows, which a viewer
who does not manage the policy cannot start."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django_q.models import OrmQ

from approvals.models import Policy
from approvals.policies import policy_save
from audit.events import Actor
from audit.models import AuditEvent
from tests.api.live import LivePortal
from tests.factories import UserFactory
from tests.policies.conftest import events

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAIN = '"aaaa"' + '.replace("a","aaaa")' * 12 + ' == ""'
CUBIC = "args.s.replace('a', args.s).replace('a', args.s) == ''"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def portal(django_db_setup, django_db_blocker):
    """A portal whose tasks go to the broker (the ORM queue), not inline: what is enqueued
    stays there for the test to see and run."""
    live = LivePortal(HITL_Q_SYNC="0").start()
    yield live
    live.stop()
    with django_db_blocker.unblock():
        live.wait_for_sessions_to_close()


@contextmanager
def session(portal: LivePortal, username: str) -> Iterator[httpx.Client]:
    """A browser's session: logged in with the password form, logged out at the end."""
    with httpx.Client(base_url=portal.url, timeout=30) as client:
        page = client.get("/accounts/login/")
        assert page.status_code == 200, f"a fresh client is logged in already ({page.status_code})"
        token = CSRF.search(page.text).group(1)
        done = client.post(
            "/accounts/login/",
            data={"login": username, "password": "pw-for-tests", "csrfmiddlewaretoken": token},
        )
        assert done.status_code == 302, done.text[:500]
        try:
            yield client
        finally:
            client.post(
                "/accounts/logout/", data={"csrfmiddlewaretoken": client.cookies["csrftoken"]}
            )


def post_form(client: httpx.Client, page_url: str, url: str, data: dict) -> httpx.Response:
    token = CSRF.search(client.get(page_url).text).group(1)
    return client.post(url, data={**data, "csrfmiddlewaretoken": token})


def field_errors(html: str, name: str) -> str:
    """The error list the admin shows for one field (Django: `id="id_<name>_error"`)."""
    match = re.search(rf'<ul class="errorlist[^"]*" id="id_{name}_error">.*?</ul>', html, re.S)
    return match.group(0) if match else ""


@pytest.mark.parametrize("condition", [CHAIN, CUBIC])
def test_the_policy_form_refuses_an_unbounded_condition(portal, condition):
    admin = UserFactory(username="ada", roles=["ops"])
    admin.is_superuser = True
    admin.save()
    with session(portal, "ada") as client:
        add = "/admin/approvals/policy/add/"
        response = post_form(
            client, add, add,
            {"name": "expensive", "priority": 100, "active": "on", "condition": condition,
             "outcome": "auto_approve", "reason": "", "stages": "[]", "escalation_ladder": "[]",
             "expiry_action": "reject", "escalation_timeout_seconds": 1800,
             "honour_role_hints": "on"},
        )  # fmt: skip
    assert response.status_code == 200  # the form again, with its errors
    errors = field_errors(response.text, "condition")
    assert "Too expensive" in errors and "HITL_CONDITION_MAX" in errors
    assert not Policy.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="policy.").exists()


def test_a_reviewer_cannot_propose_an_unbounded_standing_rule(portal, request_cp):
    UserFactory(username="rita", roles=["ops"])
    cp = request_cp(action={"tool": "shell", "args": {"s": "x"}})
    with session(portal, "rita") as client:
        review = f"/admin/approvals/checkpoint/{cp.pk}/review/"
        response = post_form(
            client, review, f"/admin/approvals/checkpoint/{cp.pk}/propose-rule/",
            {"condition": CUBIC, "days": 7, "reason": "always"},
        )  # fmt: skip
    assert response.status_code == 400
    assert "Too expensive" in response.text
    assert not Policy.objects.exists()
    assert events("policy.proposed") == []


def test_replay_is_a_task_the_page_follows_and_viewers_may_not_start(portal, request_cp):
    from approvals.transitions import checkpoint_decide

    admin = UserFactory(username="ada", roles=["ops"])
    admin.is_superuser = True
    admin.save()
    reviewer = UserFactory(username="rita", roles=["ops"])
    reviewer.user_permissions.add(Permission.objects.get(codename="view_policy"))
    for title in ("a", "b"):
        checkpoint_decide(request_cp(title=title).pk, reviewer, "approve")
    policy = Policy(name="allow deletes", match_tool="delete_files", outcome="auto_approve")
    policy_save(policy, actor=Actor.for_user(admin), by=admin)
    url = f"/admin/approvals/policy/{policy.pk}/replay/"
    Replay = apps.get_model("approvals", "Replay")

    # A reviewer may view the policy, but does not manage it: no replay.
    with session(portal, "rita") as client:
        assert client.get(f"/admin/approvals/policy/{policy.pk}/change/").status_code == 200
        assert client.get(url).status_code == 403
        token = CSRF.search(client.get("/admin/").text).group(1)
        assert client.post(url, data={"days": 1, "csrfmiddlewaretoken": token}).status_code == 403
    assert not Replay.objects.exists() and events("policy.replayed") == []

    with session(portal, "ada") as client:
        started = post_form(client, url, url, {"days": 1})
        assert started.status_code == 302
        (run,) = Replay.objects.all()
        assert run.status == "queued" and run.requested_by == admin
        # The task is on the broker, with the row's id: nothing ran in the request.
        (queued,) = [q for q in OrmQ.objects.all() if q.func() == "approvals.tasks.replay_run"]
        assert tuple(queued.task["args"]) == (str(run.pk),)
        page = client.get(started.headers["location"]).text
        assert 'data-status="queued"' in page and 'http-equiv="refresh"' in page

        from approvals.tasks import replay_run

        assert replay_run(*queued.task["args"]) == "done"  # what a worker runs
        page = client.get(started.headers["location"]).text
        assert 'data-status="done"' in page
        assert 'data-stat="auto-approved"><span class="stat-n">2<' in page
    run.refresh_from_db()
    assert (run.status, run.progress, run.total, run.result["would_approve"]) == ("done", 2, 2, 2)
    (replayed,) = events("policy.replayed", policy)
    assert replayed.actor_label == "ada" and replayed.data["replay"] == str(run.pk)
