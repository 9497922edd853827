"""Deliveries in batches (issue 20): the fan-out task sends its notice's deliveries itself,
after commit, over one SMTP connection; batch tasks claim rows in bulk with compare-and-set,
so duplicate tasks and two workers never send one twice; a failing recipient backs off alone;
give-up, re-send and the sweep work as for single deliveries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from notifications import sweeps
from notifications.models import Delivery, Notice
from notifications.outbox import OUTBOX
from notifications.tasks import deliver, deliver_many, fan_out
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EIGHT = [f"reviewer{i}@example.com" for i in range(8)]


@pytest.fixture
def eight(db):
    return [UserFactory(username=f"reviewer{i}", roles=["ops"]) for i in range(8)]


def owed_unsent(make_checkpoint) -> list[str]:
    """A request's deliveries written by its fan-out (as the sweep's recovery does) and not
    sent yet: their enqueues are never run."""
    make_checkpoint()
    fan_out(list(Notice.objects.values_list("pk", flat=True)))
    return [str(pk) for pk in Delivery.objects.values_list("pk", flat=True)]


def test_it_emails_eight_reviewers_over_one_smtp_connection_in_the_fan_out_task(
    inline, make_checkpoint, eight, smtp
):
    cp = inline(make_checkpoint)
    mails = smtp.wait_for(8)
    assert sorted(a for m in mails for a in m.recipients) == EIGHT
    assert smtp.connections == 1
    owed = Delivery.objects.filter(notice__checkpoint=cp)
    assert (
        sorted(owed.values_list("status", "attempts", "locked_until"))
        == [("delivered", 1, None)] * 8
    )
    # each with its own Message-ID, as before
    assert {m.message["Message-ID"].split("@")[0] for m in mails} == {f"<{d.pk}" for d in owed}


def test_duplicate_batch_tasks_never_send_twice(make_checkpoint, eight, smtp):
    pks = owed_unsent(make_checkpoint)
    assert deliver_many(pks + pks[:3]) == "8 delivered"  # a batch naming some twice
    assert deliver_many(pks) == "8 skipped"  # the broker redelivers it
    assert all(deliver(pk).startswith("skipped") for pk in pks)  # a task of the old kind
    assert len(smtp.wait_for(8)) == 8 and smtp.connections == 1
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


def test_a_failing_recipient_backs_off_without_holding_up_the_others_then_gives_up_and_is_resent(
    make_checkpoint,
    eight,
    smtp,
    client,
    django_user_model,
    django_capture_on_commit_callbacks,
):
    pks = owed_unsent(make_checkpoint)
    smtp.refuse = {"reviewer3@example.com"}
    assert deliver_many(pks) == "7 delivered, 1 retry"
    assert sorted(a for m in smtp.wait_for(7) for a in m.recipients) == [
        a for a in EIGHT if a != "reviewer3@example.com"
    ]
    assert smtp.connections == 1  # a refused recipient leaves the connection usable
    failing = Delivery.objects.get(address="reviewer3@example.com")
    assert (failing.status, failing.attempts, failing.locked_until) == ("pending", 1, None)
    assert "550" in failing.last_error
    assert failing.next_attempt_at > timezone.now() + dt.timedelta(seconds=20)
    assert failing.enqueued_at is None  # the sweep sends it when due

    # due again, past its retry window: the sweep's batch task gives it up, audited
    Delivery.objects.filter(pk=failing.pk).update(
        next_attempt_at=timezone.now(), give_up_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["deliveries_enqueued"] == 1
    failing.refresh_from_db()
    assert (failing.status, failing.attempts) == ("failed", 2)
    failed = AuditEvent.objects.get(verb="notification.failed")
    assert failed.data["target"] == failing.target and failed.data["attempts"] == 2

    # re-sent from the admin: the same row, delivered
    smtp.refuse = set()
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/notifications/delivery/",
            {"action": "resend_selected", "_selected_action": [str(failing.pk)]},
        )
    failing.refresh_from_db()
    assert (failing.status, failing.attempts) == ("delivered", 3)
    assert AuditEvent.objects.filter(verb="notification.resent", actor_label="root").exists()
    assert len(smtp.to("reviewer3@example.com")) == 1 and len(smtp.mails) == 8


def test_the_sweep_sends_lost_deliveries_in_batch_tasks(
    make_checkpoint, eight, smtp, settings, broker, django_capture_on_commit_callbacks
):
    pks = owed_unsent(make_checkpoint)
    Delivery.objects.update(
        enqueued_at=timezone.now() - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert OUTBOX.enqueue_due() == 8
        assert OUTBOX.enqueue_due() == 0  # marked enqueued: another cluster's sweep skips them
    [(batch,)] = [c for c in broker.calls(OUTBOX.batch_task) if set(c[0]) == set(pks)]
    assert broker.calls(OUTBOX.task) == []
    assert deliver_many(batch) == "8 delivered"
    assert len(smtp.wait_for(8)) == 8 and smtp.connections == 1


def test_a_batch_whose_lease_runs_short_hands_the_rest_back_and_claims_it_again(
    make_checkpoint, eight, smtp, monkeypatch
):
    """A slow server eats the batch's lease: no send starts with less than one attempt's
    lease left (the sweep could give that row to another worker); the rest is claimed anew."""
    pks = owed_unsent(make_checkpoint)
    monkeypatch.setattr(type(OUTBOX), "lease_seconds", lambda self: 60)
    sent = []
    real = type(OUTBOX).send_in

    def slow(self, session, row):
        sent.append(row.pk)
        if len(sent) == 3:  # the third send took 61 s of a 120 s lease
            at = timezone.now() + dt.timedelta(seconds=59)
            Delivery.objects.filter(pk__in=pks, status="pending").update(locked_until=at)
            for r in claimed:
                r.locked_until = at
        return real(self, session, row)

    claimed: list = []
    claim_many = type(OUTBOX).claim_many

    def remember(self, chunk):
        rows = claim_many(self, chunk)
        claimed[:] = rows
        return rows

    monkeypatch.setattr(type(OUTBOX), "send_in", slow)
    monkeypatch.setattr(type(OUTBOX), "claim_many", remember)
    assert deliver_many(pks) == "8 delivered"
    assert len(smtp.wait_for(8)) == 8 and len(sent) == 8
    assert smtp.connections == 2  # the rest went over a new batch's connection
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}  # handed back
