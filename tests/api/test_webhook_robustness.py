"""Webhook deliveries that go wrong in unusual ways: a callback URL httpx cannot even parse,
an attempt that outlives its lease, and createagent refusing a bad --callback-url."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agents.models import Agent, AgentKey, WebhookDelivery
from agents.sweeps import reconcile
from agents.webhooks import OUTBOX, deliver
from approvals.transitions import checkpoint_decide
from audit.models import AuditEvent
from tests.receivers import HttpReceiver as Receiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_urls")]


@pytest.fixture
def receiver(agent):
    r = Receiver([])
    agent.callback_url = r.url
    agent.save()
    yield r
    r.stop()


def _due_now():
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


def test_it_backs_off_then_gives_up_on_a_url_httpx_cannot_parse(
    ask, reviewer, agent, django_capture_on_commit_callbacks
):
    agent.callback_url = "http://[::1"  # refused before any connection: not an httpx.HTTPError
    agent.save()
    cp = ask()
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint_decide(cp["id"], reviewer, "approve")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error.startswith("UnsafeURL: Not a valid URL")
    assert delivery.locked_until is None and delivery.enqueued_at is None
    assert delivery.next_attempt_at > timezone.now()  # backed off, not re-sent at once

    WebhookDelivery.objects.update(give_up_at=timezone.now() - dt.timedelta(seconds=1))
    _due_now()
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile()["webhooks_enqueued"] == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    event = AuditEvent.objects.get(verb="webhook.failed")
    assert event.data["last_error"].startswith("UnsafeURL: Not a valid URL")


def test_a_late_attempt_does_not_overwrite_a_delivery_made_since(ask, reviewer, receiver):
    cp = ask()
    checkpoint_decide(cp["id"], reviewer, "approve")  # the task is not run: send by hand
    stale = OUTBOX.claim(WebhookDelivery.objects.get().pk)
    assert stale is not None
    # its lease runs out (a hung receiver); another attempt takes the row and delivers it
    WebhookDelivery.objects.update(locked_until=timezone.now() - dt.timedelta(seconds=1))
    assert deliver(stale.pk) == "delivered"

    # the first attempt finally returns a failure past the give-up time
    WebhookDelivery.objects.update(give_up_at=timezone.now() - dt.timedelta(seconds=1))
    assert OUTBOX.record_attempt(stale, None, "ReadTimeout: timed out").startswith("skipped")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 2, "")
    assert not AuditEvent.objects.filter(verb="webhook.failed").exists()
    assert AuditEvent.objects.filter(verb="webhook.delivered").count() == 1


def test_a_late_attempt_does_not_release_the_lease_of_the_attempt_in_flight(ask, reviewer, agent):
    agent.callback_url = "http://127.0.0.1:9/hook"
    agent.save()
    cp = ask()
    checkpoint_decide(cp["id"], reviewer, "approve")
    pk = WebhookDelivery.objects.get().pk
    stale = OUTBOX.claim(pk)
    WebhookDelivery.objects.update(locked_until=timezone.now() - dt.timedelta(seconds=1))
    current = OUTBOX.claim(pk)  # the second attempt holds the row now
    assert current is not None and current.attempts == 2

    assert OUTBOX.record_attempt(stale, 500, "HTTP 500: oops").startswith("skipped")
    delivery = WebhookDelivery.objects.get()
    assert delivery.locked_until == current.locked_until
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == (
        "pending",
        None,
        "",
    )

    assert OUTBOX.record_attempt(current, 200, "") == "delivered"
    assert WebhookDelivery.objects.get().status == "delivered"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "not a url", "http://", "http://[::1", "https:///path"],
)
def test_createagent_refuses_a_bad_callback_url_before_creating_anything(url):
    with pytest.raises(CommandError, match="--callback-url"):
        call_command("createagent", "deploy-bot", "--callback-url", url, stdout=StringIO())
    assert not Agent.objects.exists()
    assert not AgentKey.objects.exists()
    assert not AuditEvent.objects.exists()


def test_createagent_accepts_an_http_callback_url():
    url = "https://agent.example.com:8443/hitl-webhook"
    call_command("createagent", "deploy-bot", "--callback-url", url, stdout=StringIO())
    assert Agent.objects.get(slug="deploy-bot").callback_url == url
