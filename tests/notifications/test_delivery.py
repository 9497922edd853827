"""Notifications reach people through real servers on 127.0.0.1: email (SMTP), Slack,
Teams and signed webhooks (HTTP), once per event, recipient and channel, retried with
backoff, visible and re-sendable in the admin, recovered by the sweep."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.transitions import run_start
from approvals.models import Checkpoint
from approvals.signals import checkpoint_requested
from audit.events import Actor
from audit.models import AuditEvent
from hitl_client import verify_webhook
from notifications import sweeps
from notifications.models import Delivery, Notice
from notifications.tasks import deliver, fan_out
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ASK = {
    "title": "Delete old logs",
    "summary": "Disk on web-1 is 95% full; these are the oldest logs.",
    "risk": "medium",
    "action": {"tool": "delete_files", "args": {"paths": ["/var/log/a.log", "/var/log/b.log"]}},
}


def test_it_emails_the_role_and_posts_to_its_team_channels(
    inline, make_checkpoint, ops_team, agent, smtp, http, channel
):
    stan = UserFactory(username="stan", roles=["ops"])  # the requester: four-eyes
    owner = UserFactory(username="olga", roles=["ops"])  # the agent's owner: four-eyes
    agent.owner = owner
    agent.save()
    channel("email")
    channel("slack", name="#ops", url=http.base + "/slack")
    channel("teams", name="Ops", url=http.base + "/teams")
    hook = channel("webhook", url=http.base + "/pager")
    run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent), created_by=stan)

    cp = inline(make_checkpoint, run=run, **ASK)

    mails = smtp.wait_for(2)
    assert sorted(a for m in mails for a in m.recipients) == [
        "raj@example.com",
        "rita@example.com",
    ]
    mail = smtp.to("rita@example.com")[0]
    assert mail.subject == "[HITL] Approval needed: Delete old logs"
    text, html = mail.body("plain"), mail.body("html")
    for part in (text, html):
        assert "bot asks the ops role" in part
        assert "Disk on web-1 is 95% full" in part
        assert "delete_files" in part and "/var/log/a.log" in part
        assert f"/admin/approvals/checkpoint/{cp.pk}/review/" in part
    assert mail.message["Message-ID"].startswith(
        f"<{Delivery.objects.get(target__endswith=str(ops_team['rita'].pk)).pk}@"
    )

    slack = http.at("/slack")[0].json()
    blocks = json.dumps(slack["blocks"])
    assert slack["blocks"][0]["text"]["text"] == "Approval needed: Delete old logs"
    assert "delete_files" in blocks and "Medium" in blocks and "<!date^" in blocks
    buttons = slack["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["hitl_open"]  # no Slack app configured
    assert buttons[0]["url"].endswith(f"/admin/approvals/checkpoint/{cp.pk}/review/")

    card = http.at("/teams")[0].json()["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["actions"][0]["type"] == "Action.OpenUrl"
    assert card["actions"][0]["url"].endswith(f"/{cp.pk}/review/")
    tool = {"type": "TextRun", "text": "delete_files"}
    assert any(tool in fact["inlines"] for fact in card["body"][2]["items"])

    pager = http.at("/pager")[0]
    assert verify_webhook(hook.secret, pager.headers, pager.body)
    assert pager.headers["X-HITL-Event"] == "checkpoint.requested"
    event = pager.json()
    assert event["checkpoint"]["id"] == str(cp.pk) and event["role"] == "ops"
    assert pager.headers["X-HITL-Delivery"] == event["delivery"]

    assert Notice.objects.get().event == "checkpoint.requested"
    assert Delivery.objects.filter(status="delivered").count() == 5
    assert not Delivery.objects.exclude(status="delivered").exists()


def test_a_role_is_emailed_unless_its_own_email_channel_says_otherwise(
    inline, make_checkpoint, ops_team, smtp, http, channel
):
    inline(make_checkpoint)
    assert len(smtp.wait_for(2)) == 2
    # A pager for escalations beside it: the role's email goes on (issue 18 §6).
    channel("webhook", url=http.base + "/pager", events=["checkpoint.escalated"])
    inline(make_checkpoint)
    assert len(smtp.wait_for(4)) == 4 and http.requests == []
    channel("slack", url=http.url)  # a Slack channel too: email and Slack
    inline(make_checkpoint)
    assert len(smtp.wait_for(6)) == 6 and len(http.wait_for(1)) == 1
    # Its own email channel, inactive: no more email, only its other channels.
    channel("email", active=False)
    inline(make_checkpoint)
    assert len(http.wait_for(2)) == 2
    assert len(smtp.mails) == 6 and [r.path for r in http.requests] == ["/hook", "/hook"]


def test_it_tells_each_recipient_once_when_the_signal_is_sent_again(
    inline, make_checkpoint, ops_team, smtp, django_capture_on_commit_callbacks
):
    cp = inline(make_checkpoint)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        checkpoint_requested.send(sender=Checkpoint, checkpoint=cp)
    assert Notice.objects.count() == 1 and Delivery.objects.count() == 2
    # a redelivered task finds the delivery done
    for delivery in Delivery.objects.all():
        assert deliver(str(delivery.pk)).startswith("skipped")
    assert len(smtp.wait_for(2)) == 2


def test_it_records_the_notice_in_the_transaction_that_caused_it(make_checkpoint, ops_team):
    with pytest.raises(RuntimeError), transaction.atomic():
        make_checkpoint()
        assert Notice.objects.filter(fanned_out_at__isnull=True).count() == 1
        assert not Delivery.objects.exists()  # the fan-out comes after commit
        raise RuntimeError("the request fails")
    assert not Delivery.objects.exists() and not Notice.objects.exists()


def test_it_retries_with_backoff_gives_up_and_resends_from_the_admin(
    inline,
    make_checkpoint,
    ops_team,
    http,
    channel,
    client,
    django_user_model,
    django_capture_on_commit_callbacks,
):
    channel("email", active=False)  # Slack only
    channel("slack", url=http.url)
    http.statuses = [500, 503]
    inline(make_checkpoint)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at > timezone.now() + dt.timedelta(seconds=20)

    # the retry comes due: the sweep sends it; it fails again after the retry window: given up
    Delivery.objects.update(next_attempt_at=timezone.now(), give_up_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["deliveries_enqueued"] == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 2, 503)
    failed = AuditEvent.objects.get(verb="notification.failed")
    assert failed.data["channel"] == "slack" and failed.data["attempts"] == 2

    # visible in the admin, and re-sent from it (same row, same id)
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    page = client.get("/admin/notifications/delivery/?status__exact=failed")
    assert str(delivery.pk) in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/notifications/delivery/",
            {"action": "resend_selected", "_selected_action": [str(delivery.pk)]},
        )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert AuditEvent.objects.filter(verb="notification.resent", actor_label="root").exists()
    assert len(http.requests) == 3


def test_the_sweep_recovers_a_send_whose_task_was_lost(
    make_checkpoint, ops_team, smtp, settings, django_capture_on_commit_callbacks
):
    make_checkpoint()
    # The fan-out runs (as its task does), but on_commit never runs: the sends' enqueues are lost
    fan_out(list(Notice.objects.values_list("pk", flat=True)))
    assert Delivery.objects.filter(attempts=0).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["deliveries_enqueued"] == 0  # within the grace: maybe in flight
    Delivery.objects.update(
        enqueued_at=timezone.now() - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["deliveries_enqueued"] == 2
    assert len(smtp.wait_for(2)) == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_it_refuses_a_channel_it_could_not_deliver_to(db, ops_team):
    from django.core.exceptions import ValidationError

    from notifications.models import RoleChannel

    for fields, field in [
        ({"kind": "slack", "url": "not a url"}, "url"),
        ({"kind": "email", "config": {"to": ["nobody"]}}, "config"),
        ({"kind": "email", "role": "nobody-role"}, "role"),
        ({"kind": "email", "events": ["checkpoint.exploded"]}, "events"),
        # told to the agent's owner by email, never through a role's channel
        ({"kind": "email", "events": ["agent.halted"]}, "events"),
        ({"kind": "webhook", "url": "https://pager.example.com/x", "secret": ""}, "secret"),
    ]:
        row = RoleChannel(**{"role": "ops", **fields})
        with pytest.raises(ValidationError) as exc:
            row.clean()
        assert field in exc.value.message_dict, (fields, exc.value.message_dict)
    # The managers' channel may pick drill results.
    RoleChannel(role=settings.HITL_MANAGERS_GROUP, kind="email", events=["drill.finished"]).clean()
