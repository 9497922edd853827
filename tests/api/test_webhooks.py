"""Signed webhooks through the outbox, against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import transaction
from django.utils import timezone

from agents.models import WebhookDelivery
from agents.sweeps import reconcile
from approvals.transitions import checkpoint_decide
from audit.models import AuditEvent
from hitl_client import WebhookVerificationError, verify_webhook
from tests.receivers import HttpReceiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_urls")]


@pytest.fixture
def receiver(agent):
    r = HttpReceiver([500])
    agent.callback_url = r.url
    agent.save()
    yield r
    r.stop()


def _decide(capture, cp_id, user, outcome="approve", **kwargs):
    with capture(execute=True):
        checkpoint_decide(cp_id, user, outcome, **kwargs)


def test_it_retries_a_failed_delivery_then_delivers_it_signed(
    ask, reviewer, agent, receiver, django_capture_on_commit_callbacks
):
    cp = ask()
    _decide(
        django_capture_on_commit_callbacks,
        cp["id"],
        reviewer,
        "modify",
        action={"args": {"paths": ["/x"]}},
        comment="only /x",
    )
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at > timezone.now()
    assert len(receiver.requests) == 1

    # time passes: the retry is due; the sweep enqueues it and it is delivered
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile()["webhooks_enqueued"] == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert delivery.delivered_at is not None

    assert len(receiver.requests) == 2
    (h1, b1), (h2, b2) = ((r.headers, r.body) for r in receiver.requests)
    assert b1 == b2 and h1["X-HITL-Delivery"] == h2["X-HITL-Delivery"] == str(delivery.pk)
    assert verify_webhook(agent.webhook_secret, h2, b2)
    payload = json.loads(b2)
    assert payload["event"] == "checkpoint.decided"
    assert payload["checkpoint"]["id"] == cp["id"]
    assert payload["decision"]["outcome"] == "modify"
    assert payload["decision"]["action"]["args"] == {"paths": ["/x"]}
    assert payload["decision"]["comment"] == "only /x"
    approved = AuditEvent.objects.get(verb="checkpoint.approved", target_id=cp["id"])
    assert payload["decision"]["ledger"]["seq"] == approved.seq is not None  # its place in the log
    assert payload["decision"]["receipt"]  # and what to redeem before acting
    assert payload["run"]["id"] == cp["run"]
    assert AuditEvent.objects.filter(verb="webhook.delivered").count() == 1
    # a late duplicate task does nothing
    from agents.tasks import deliver_webhook

    assert deliver_webhook(str(delivery.pk)).startswith("skipped")
    assert len(receiver.requests) == 2


def test_it_writes_the_outbox_row_in_the_deciding_transaction(ask, reviewer, receiver):
    cp = ask()
    with pytest.raises(RuntimeError), transaction.atomic():
        checkpoint_decide(cp["id"], reviewer, "approve")
        assert WebhookDelivery.objects.filter(checkpoint_id=cp["id"]).count() == 1
        raise RuntimeError("the decision's transaction fails")
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


def test_it_recovers_a_delivery_whose_task_was_lost(
    ask, reviewer, receiver, settings, django_capture_on_commit_callbacks
):
    cp = ask()
    checkpoint_decide(cp["id"], reviewer, "approve")  # on_commit never runs: the task is lost
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile()["webhooks_enqueued"] == 0  # within the grace period: maybe in flight
    WebhookDelivery.objects.update(
        enqueued_at=timezone.now() - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE + 1)
    )
    receiver.statuses = []
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile()["webhooks_enqueued"] == 1
    assert WebhookDelivery.objects.get().status == "delivered"


def test_it_gives_up_after_the_retry_window(
    ask, reviewer, receiver, django_capture_on_commit_callbacks
):
    cp = ask()
    receiver.statuses = [503, 503]
    _decide(django_capture_on_commit_callbacks, cp["id"], reviewer)
    WebhookDelivery.objects.update(
        next_attempt_at=timezone.now(), give_up_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        reconcile()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert AuditEvent.objects.filter(verb="webhook.failed").exists()


def test_it_resends_from_the_admin(
    ask, reviewer, receiver, client, django_user_model, django_capture_on_commit_callbacks
):
    cp = ask()
    receiver.statuses = [500]
    _decide(django_capture_on_commit_callbacks, cp["id"], reviewer)
    WebhookDelivery.objects.update(status="failed")
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    client.force_login(admin)
    delivery = WebhookDelivery.objects.get()
    assert client.get("/admin/agents/webhookdelivery/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/agents/webhookdelivery/",
            {"action": "resend_selected", "_selected_action": [str(delivery.pk)]},
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert AuditEvent.objects.filter(verb="webhook.resent", actor_label="root").exists()


def test_it_sends_nothing_without_a_callback_url(ask, reviewer):
    cp = ask()
    checkpoint_decide(cp["id"], reviewer, "approve")
    assert not WebhookDelivery.objects.exists()


def test_verify_webhook_refuses_tampering_and_replays():
    from hitl_client.webhooks import sign

    body = b'{"event":"checkpoint.decided"}'
    headers = {"x-hitl-signature": sign("whsec_1", body, timestamp=1_000_000)}
    assert verify_webhook("whsec_1", headers, body, now=1_000_010)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook("whsec_1", headers, body + b" ", now=1_000_010)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook("whsec_2", headers, body, now=1_000_010)
    with pytest.raises(WebhookVerificationError, match="replay"):
        verify_webhook("whsec_1", headers, body, now=1_000_000 + 3600)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook("whsec_1", {}, body)
