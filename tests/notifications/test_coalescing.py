"""Coalescing (issue 20): a mailbox sent HITL_NOTIFY_COALESCE_PER_MINUTE new requests within a
minute gets the further ones as one "N new requests in your queue" email when the minute is
over, with the link to the queue; the coalesced deliveries are kept and say so. Under the
limit nothing changes. And two workers claiming the same batch send each delivery once (run
on PostgreSQL too)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from notifications import sweeps
from notifications.models import Delivery, Notice
from notifications.outbox import OUTBOX

pytestmark = pytest.mark.django_db


def make_many(make_checkpoint, count: int, together: bool) -> None:
    if together:  # one transaction: one fan-out task with every notice
        with transaction.atomic():
            for i in range(count):
                make_checkpoint(title=f"Request {i}")
    else:
        for i in range(count):
            make_checkpoint(title=f"Request {i}")


@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "one-transaction"])
def test_25_requests_in_a_minute_are_10_emails_and_one_summary_of_15(
    inline,
    make_checkpoint,
    ops_team,
    smtp,
    client,
    django_user_model,
    django_capture_on_commit_callbacks,
    together,
):
    inline(make_many, make_checkpoint, 25, together)
    for person in ("rita", "raj"):
        mails = smtp.to(f"{person}@example.com")
        assert len(mails) == 10
        assert all(m.subject.startswith("[HITL] Approval needed: Request ") for m in mails)
    rita = ops_team["rita"]
    rows = Delivery.objects.filter(recipient=rita)
    summary = rows.get(event="coalesced")
    coalesced = rows.filter(status="coalesced")
    assert coalesced.count() == 15 and rows.filter(status="delivered").count() == 10
    assert set(coalesced.values_list("coalesced_into", flat=True)) == {summary.pk}
    assert (summary.status, summary.attempts, summary.notice_id) == ("pending", 0, None)
    assert summary.next_attempt_at > timezone.now() + dt.timedelta(seconds=50)
    # every notice is still recorded and fanned out: nothing lost
    assert Notice.objects.filter(fanned_out_at__isnull=False).count() == 25

    # the window is open: the sweep sends nothing yet
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["deliveries_enqueued"] == 0
    assert len(smtp.mails) == 20

    # the minute is over: one summary each, saying 15, with the link to the queue
    Delivery.objects.filter(event="coalesced").update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["deliveries_enqueued"] == 2
    smtp.wait_for(22)
    [digest] = [m for m in smtp.to("rita@example.com") if "queue" in m.subject]
    assert digest.subject == "[HITL] 15 new requests in your queue"
    for part in (digest.body("plain"), digest.body("html")):
        assert "/admin/approvals/checkpoint/" in part
        assert "and 10 more" in part
    assert len(smtp.to("raj@example.com")) == 11
    summary.refresh_from_db()
    assert summary.status == "delivered"
    assert rows.filter(status="coalesced").count() == 15  # they stay recorded as such

    # visible in the admin
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    page = client.get("/admin/notifications/delivery/?status__exact=coalesced").content.decode()
    assert "30 deliveries" in page, page[:3000]
    assert str(summary) in page  # each names the summary that told of it


def test_under_the_limit_nothing_changes(inline, make_checkpoint, ops_team, smtp):
    inline(make_many, make_checkpoint, 10, False)
    assert len(smtp.wait_for(20)) == 20
    assert not Delivery.objects.filter(event="coalesced").exists()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_limit_of_0_never_coalesces(inline, make_checkpoint, ops_team, smtp, settings):
    settings.HITL_NOTIFY_COALESCE_PER_MINUTE = 0
    inline(make_many, make_checkpoint, 12, True)
    assert len(smtp.wait_for(24)) == 24
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_the_same_batch_send_each_delivery_once(make_checkpoint, smtp, broker):
    """Two batch tasks with the same rows (a redelivered task, the sweep's) at the same
    instant: a free race, then each side holding its claim's transaction open (the rows'
    lock) while the other starts."""
    from notifications.events import fan_out
    from tests.factories import UserFactory
    from tests.test_races import race

    for i in range(8):
        UserFactory(username=f"reviewer{i}", roles=["ops"])
    for hold in (None, 0, 1, None, 0, 1):
        cp = make_checkpoint()  # committed; its fan-out task waits on the broker, unrun
        fan_out(list(Notice.objects.filter(checkpoint=cp).values_list("pk", flat=True)))
        pks = [
            str(pk)
            for pk in Delivery.objects.filter(notice__checkpoint=cp).values_list("pk", flat=True)
        ]
        assert len(pks) == 8
        before = len(smtp.mails)
        results = race(
            lambda pks=pks: OUTBOX.deliver_many(pks),
            lambda pks=pks: OUTBOX.deliver_many(pks),
            hold=hold,
        )
        assert [r[0] for r in results] == ["ok", "ok"], results
        assert sum(r[1].get("delivered", 0) for r in results) == 8, results
        assert sum(r[1].get("skipped", 0) for r in results) == 8, results
        mails = smtp.wait_for(before + 8)[before:]
        assert len(mails) == 8
        assert {m.message["Message-ID"].split("@")[0] for m in mails} == {f"<{pk}" for pk in pks}
        owed = Delivery.objects.filter(pk__in=pks)
        assert set(owed.values_list("status", "attempts")) == {("delivered", 1)}
    assert len(smtp.mails) == 48
