"""Witnesses get the latest signed head outside the database: an append-only file, a signed
webhook (a real HTTP server on 127.0.0.1), an email; at most every interval, through the
outbox (`core.outbox`): a failed push is retried with backoff, a lost send is recovered by the
sweep, an older head still owed is superseded by the latest, and two publishers owe a witness
each head once."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest
from django.core import mail
from django.utils import timezone

from core.ledger import heads, sequencer, witnesses
from core.ledger.verify import public_keys
from core.models import TreeHead, WitnessDelivery, WitnessState
from hitl_client.webhooks import verify_webhook
from tests.receivers import HttpReceiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_urls")]
PORT = 18201  # the receivers' (this suite's share of local ports)


def _backoff_passed(url: str) -> None:
    WitnessDelivery.objects.filter(url=url, status="pending").update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _latest_head() -> TreeHead:
    return TreeHead.objects.order_by("-tree_size").first()


def test_it_pushes_the_latest_head_to_every_witness(make_checkpoint, settings, tmp_path, inline):
    receiver = HttpReceiver([503])  # the webhook witness is down at first
    try:
        path = tmp_path / "mnt" / "heads.jsonl"
        settings.HITL_LEDGER_WITNESSES = [
            f"file://{path}",
            receiver.url,
            "mailto:auditors@example.com",
        ]
        settings.HITL_LEDGER_WITNESS_SECRET = "s3cret"
        make_checkpoint()
        sequencer.sequence_pending()
        head = heads.as_json(TreeHead.objects.order_by("-tree_size").first())

        assert inline(witnesses.publish_due) == 3  # owed to each, sent after commit
        # the file and the mail got it; the webhook failed
        assert [json.loads(line) for line in path.read_text().splitlines()] == [head]
        assert heads.check(json.loads(path.read_text()), public_keys()) == ""
        assert (
            len(mail.outbox) == 1
            and json.dumps(head, separators=(",", ":"), sort_keys=True) in mail.outbox[0].body
        )
        failed = WitnessState.objects.get(url=receiver.url)
        assert "503" in failed.last_error and failed.last_tree_size == 0

        assert inline(witnesses.publish_due) == 0  # nothing new, and the retry is not due yet
        _backoff_passed(receiver.url)
        assert inline(witnesses.publish_due) == 1  # the webhook, retried
        headers, body = receiver.requests[-1].headers, receiver.requests[-1].body
        assert json.loads(body) == head
        t, v1 = (part.split("=", 1)[1] for part in headers["X-HITL-Signature"].split(","))
        expected = hmac.new(b"s3cret", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        assert v1 == expected
        assert WitnessState.objects.get(url=receiver.url).last_tree_size == head["tree_size"]
    finally:
        receiver.stop()


def test_the_minute_sweep_pushes_heads_to_the_witnesses_when_no_sequencer_runs(
    make_checkpoint, settings, tmp_path, inline
):
    from hitlportal.sweeps import run_all

    path = tmp_path / "heads.jsonl"
    settings.HITL_LEDGER_WITNESSES = [f"file://{path}"]
    make_checkpoint()
    assert not TreeHead.objects.exists()  # nothing sequenced yet: no sequencer runs

    result = inline(run_all)["ledger"]
    head = TreeHead.objects.order_by("-tree_size").get(tree_size=result["sequenced"])
    assert result == {"sequenced": head.tree_size, "witnessed": 1}
    assert [json.loads(line) for line in path.read_text().splitlines()] == [heads.as_json(head)]
    assert WitnessState.objects.get().last_tree_size == head.tree_size
    assert inline(run_all)["ledger"] == {"sequenced": 0, "witnessed": 0}  # nothing new


def test_a_witness_due_to_two_publishers_gets_the_head_once(
    make_checkpoint, settings, tmp_path, monkeypatch
):
    """The sequencer and the sweep both publish: the one that claims the attempt first
    pushes, the other sees its claim and moves on."""
    path = tmp_path / "heads.jsonl"
    url = f"file://{path}"
    settings.HITL_LEDGER_WITNESSES = [url]
    make_checkpoint()
    sequencer.sequence_pending()
    long_ago = timezone.now() - dt.timedelta(days=1)
    WitnessState.objects.create(url=url, owed_at=long_ago)
    real_interval = witnesses._interval

    def other_publisher_claims_meanwhile(url: str) -> int:
        # Between this publisher's read of the state and its claim, the other one claims.
        WitnessState.objects.filter(url=url).update(owed_at=timezone.now())
        return real_interval(url)

    monkeypatch.setattr(witnesses, "_interval", other_publisher_claims_meanwhile)
    assert witnesses.publish_due() == 0
    assert not path.exists()
    assert not WitnessDelivery.objects.exists()


def test_a_failed_push_is_retried_with_backoff_by_the_outbox_and_then_delivered(
    make_checkpoint, settings, inline
):
    receiver = HttpReceiver([503], port=PORT)
    try:
        settings.HITL_LEDGER_WITNESSES = [receiver.url]
        settings.HITL_LEDGER_WITNESS_SECRET = "s3cret"
        make_checkpoint()
        sequencer.sequence_pending()
        head = heads.as_json(_latest_head())

        assert inline(witnesses.publish_due) == 1
        row = WitnessDelivery.objects.get()
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 503)
        assert row.locked_until is None and row.enqueued_at is None  # nothing in flight
        assert row.next_attempt_at > timezone.now() + dt.timedelta(seconds=20)  # backed off
        state = WitnessState.objects.get()
        assert "HTTP 503" in state.last_error and state.last_tree_size == 0
        assert state.last_attempt_at == row.last_attempt_at

        assert inline(witnesses.publish_due) == 0  # not due: nothing sent
        assert len(receiver.requests) == 1

        _backoff_passed(receiver.url)
        assert inline(witnesses.publish_due) == 1
        row.refresh_from_db()
        assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2, 200)
        assert [r.json() for r in receiver.requests] == [head, head]  # the same head again
        for request in receiver.requests:
            assert verify_webhook("s3cret", request.headers, request.body)
        state.refresh_from_db()
        assert (state.last_tree_size, state.last_error) == (head["tree_size"], "")
        assert state.last_pushed_at is not None
    finally:
        receiver.stop()


def test_a_delivery_whose_task_was_lost_is_recovered_by_the_sweep(
    make_checkpoint, settings, inline
):
    from hitlportal.sweeps import run_all

    receiver = HttpReceiver(port=PORT)
    try:
        settings.HITL_LEDGER_WITNESSES = [receiver.url]
        make_checkpoint()
        sequencer.sequence_pending()
        # Owed, but its on-commit enqueue never runs (a process killed at commit, a broker
        # that dropped the task).
        assert witnesses.publish_due() == 1
        row = WitnessDelivery.objects.get()
        assert (row.status, row.attempts) == ("pending", 0)

        # Within the grace its task may still be on its way: the sweep leaves it alone.
        assert inline(run_all)["ledger"] == {"sequenced": 0, "witnessed": 0}
        assert receiver.requests == []

        lost = timezone.now() - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE + 1)
        WitnessDelivery.objects.update(enqueued_at=lost)
        assert inline(run_all)["ledger"] == {"sequenced": 0, "witnessed": 1}
        assert [r.json() for r in receiver.requests] == [row.head]
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("delivered", 1)
        assert WitnessState.objects.get().last_tree_size == row.tree_size
    finally:
        receiver.stop()


def test_a_witness_gets_the_latest_head_and_an_older_one_still_owed_is_superseded(
    make_checkpoint, settings, inline
):
    receiver = HttpReceiver([503], port=PORT)
    try:
        settings.HITL_LEDGER_WITNESSES = [receiver.url]
        make_checkpoint()
        sequencer.sequence_pending()
        first = _latest_head()
        assert inline(witnesses.publish_due) == 1  # refused: retried later
        make_checkpoint()
        sequencer.sequence_pending()
        latest = _latest_head()
        assert latest.tree_size > first.tree_size

        assert inline(witnesses.publish_due) == 0  # the interval has not passed
        later = timezone.now() + dt.timedelta(seconds=settings.HITL_LEDGER_WITNESS_INTERVAL + 1)
        assert inline(witnesses.publish_due, now=later) == 1  # the latest; the first is not resent
        assert [r.json() for r in receiver.requests] == [
            heads.as_json(first),
            heads.as_json(latest),
        ]
        statuses = dict(WitnessDelivery.objects.values_list("tree_size", "status"))
        assert statuses == {first.tree_size: "superseded", latest.tree_size: "delivered"}
        state = WitnessState.objects.get()
        assert (state.last_tree_size, state.last_error) == (latest.tree_size, "")
        assert (state.owed_tree_size, state.owed_at) == (latest.tree_size, later)

        _backoff_passed(receiver.url)
        assert inline(witnesses.publish_due, now=later) == 0  # superseded: never sent again
        assert len(receiver.requests) == 2
    finally:
        receiver.stop()


def test_an_older_head_in_flight_ends_its_attempt_and_is_superseded_if_it_failed(
    make_checkpoint, settings, tmp_path, inline
):
    path = tmp_path / "heads.jsonl"
    settings.HITL_LEDGER_WITNESSES = [f"file://{path}"]
    make_checkpoint()
    sequencer.sequence_pending()
    first = _latest_head()
    witnesses.publish_due()  # owed; its task is not run: an attempt by hand below
    in_flight = witnesses.OUTBOX.claim(WitnessDelivery.objects.get().pk)
    make_checkpoint()
    sequencer.sequence_pending()
    latest = _latest_head()

    later = timezone.now() + dt.timedelta(seconds=settings.HITL_LEDGER_WITNESS_INTERVAL + 1)
    assert inline(witnesses.publish_due, now=later) == 1
    assert WitnessDelivery.objects.get(tree_size=first.tree_size).status == "pending"  # in flight
    assert [json.loads(line) for line in path.read_text().splitlines()] == [heads.as_json(latest)]

    # The older attempt fails at last: not retried (a later head was owed), and the witness's
    # state still shows what it got.
    assert witnesses.OUTBOX.record_attempt(in_flight, None, "OSError: disk full") == "retry"
    assert WitnessDelivery.objects.get(tree_size=first.tree_size).status == "superseded"
    state = WitnessState.objects.get()
    assert (state.last_tree_size, state.last_error) == (latest.tree_size, "")


def test_an_email_witness_is_owed_a_head_at_most_every_email_interval(
    make_checkpoint, settings, tmp_path, inline
):
    path = tmp_path / "heads.jsonl"
    settings.HITL_LEDGER_WITNESSES = [f"file://{path}", "mailto:auditors@example.com"]
    make_checkpoint()
    sequencer.sequence_pending()
    assert inline(witnesses.publish_due) == 2
    start = timezone.now()

    make_checkpoint()
    sequencer.sequence_pending()
    minute = start + dt.timedelta(seconds=settings.HITL_LEDGER_WITNESS_INTERVAL + 1)
    assert inline(witnesses.publish_due, now=minute) == 1  # the file only
    assert len(path.read_text().splitlines()) == 2 and len(mail.outbox) == 1

    make_checkpoint()
    sequencer.sequence_pending()
    day = start + dt.timedelta(seconds=settings.HITL_LEDGER_WITNESS_EMAIL_INTERVAL + 1)
    assert inline(witnesses.publish_due, now=day) == 2
    assert len(mail.outbox) == 2
    latest = json.dumps(heads.as_json(_latest_head()), separators=(",", ":"), sort_keys=True)
    assert latest in mail.outbox[1].body


def test_a_delivery_to_a_witness_no_longer_configured_is_not_sent(
    make_checkpoint, settings, tmp_path, inline
):
    gone, kept = tmp_path / "gone.jsonl", tmp_path / "kept.jsonl"
    settings.HITL_LEDGER_WITNESSES = [f"file://{gone}", f"file://{kept}"]
    make_checkpoint()
    sequencer.sequence_pending()
    witnesses.publish_due()  # owed; the tasks are lost
    settings.HITL_LEDGER_WITNESSES = [f"file://{kept}"]
    lost = timezone.now() - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE + 1)
    WitnessDelivery.objects.update(enqueued_at=lost)

    assert inline(witnesses.publish_due) == 2
    assert not gone.exists() and kept.exists()
    row = WitnessDelivery.objects.get(url=f"file://{gone}")
    assert row.status == "pending" and "no longer in HITL_LEDGER_WITNESSES" in row.last_error


@pytest.mark.django_db(transaction=True)
def test_two_publishers_at_once_owe_a_witness_each_head_once(make_checkpoint, settings, broker):
    """Real threads and connections (PostgreSQL, or the SQLite file database): the sequencer
    and the sweep publish at the same instant, or one holds its claim (inside its
    transaction) while the other arrives; either way one delivery per head, enqueued once."""
    from tests.test_races import ROUNDS, race

    url = "file:///nonexistent/heads.jsonl"  # the tasks stay in the broker: nothing is sent
    settings.HITL_LEDGER_WITNESSES = [url]
    WitnessState.objects.create(url=url)
    start, step = timezone.now(), dt.timedelta(seconds=settings.HITL_LEDGER_WITNESS_INTERVAL + 1)
    for round_ in range(max(ROUNDS // 5, 6)):
        make_checkpoint()
        sequencer.sequence_pending()
        head = _latest_head()
        now = start + step * (round_ + 1)  # the interval has passed for this head
        hold = [0, 1, None][round_ % 3]
        results = race(
            lambda now=now: witnesses.publish_due(now=now),
            lambda now=now: witnesses.publish_due(now=now),
            hold=hold,
        )
        assert sorted(results) == [("ok", 0), ("ok", 1)], results
        if hold is not None:
            assert results.overlapped(), results.spans
            assert results[hold] == ("ok", 1)  # the one holding its claim owed it
        [row] = WitnessDelivery.objects.filter(url=url, tree_size=head.tree_size)
        assert broker.calls(witnesses.OUTBOX.task).count((str(row.pk),)) == 1
    assert WitnessDelivery.objects.count() == max(ROUNDS // 5, 6)


def test_finished_deliveries_are_deleted_after_a_week_when_the_next_head_is_owed(
    make_checkpoint, settings, tmp_path, inline
):
    url = f"file://{tmp_path / 'heads.jsonl'}"
    settings.HITL_LEDGER_WITNESSES = [url]
    make_checkpoint()
    sequencer.sequence_pending()
    inline(witnesses.publish_due)
    weeks_ago = timezone.now() - witnesses.KEEP_FINISHED - dt.timedelta(minutes=1)
    WitnessDelivery.objects.update(created_at=weeks_ago)
    recent = WitnessDelivery.objects.create(
        url=url, tree_size=1, head={}, status="superseded", give_up_at=timezone.now()
    )
    make_checkpoint()
    sequencer.sequence_pending()

    later = timezone.now() + dt.timedelta(seconds=settings.HITL_LEDGER_WITNESS_INTERVAL + 1)
    assert inline(witnesses.publish_due, now=later) == 1
    kept = set(WitnessDelivery.objects.values_list("tree_size", flat=True))
    assert kept == {recent.tree_size, _latest_head().tree_size}


def test_managers_read_the_witnesses_state_and_deliveries_in_the_admin(
    make_checkpoint, settings, tmp_path, inline, manager, reviewer
):
    from django.test import Client
    from django.urls import reverse

    settings.HITL_LEDGER_WITNESSES = [f"file://{tmp_path / 'heads.jsonl'}"]
    make_checkpoint()
    sequencer.sequence_pending()
    inline(witnesses.publish_due)
    for name in ["admin:core_witnessstate_changelist", "admin:core_witnessdelivery_changelist"]:
        pages = {}
        for user in (manager, reviewer):
            client = Client(HTTP_HOST="127.0.0.1")
            client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
            pages[user.username] = client.get(reverse(name))
        assert pages["max"].status_code == 200, name
        assert str(_latest_head().tree_size) in pages["max"].content.decode()
        assert pages["rita"].status_code == 403, name
