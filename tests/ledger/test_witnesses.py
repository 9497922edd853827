"""Witnesses get the latest signed head outside the database: an append-only file, a signed
webhook (a real HTTP server on 127.0.0.1), an email; at most every interval, and a failed one
is tried again at the next."""

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
from core.models import TreeHead, WitnessState
from tests.receivers import HttpReceiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_urls")]


def test_it_pushes_the_latest_head_to_every_witness(make_checkpoint, settings, tmp_path):
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

        assert witnesses.publish_due() == 2  # the file and the mail; the webhook failed
        assert [json.loads(line) for line in path.read_text().splitlines()] == [head]
        assert heads.check(json.loads(path.read_text()), public_keys()) == ""
        assert (
            len(mail.outbox) == 1
            and json.dumps(head, separators=(",", ":"), sort_keys=True) in mail.outbox[0].body
        )
        failed = WitnessState.objects.get(url=receiver.url)
        assert "503" in failed.last_error and failed.last_tree_size == 0

        assert witnesses.publish_due() == 0  # nothing new, and the interval has not passed
        later = timezone.now() + dt.timedelta(seconds=settings.HITL_LEDGER_WITNESS_INTERVAL + 1)
        assert witnesses.publish_due(now=later) == 1  # the webhook, retried
        headers, body = receiver.requests[-1].headers, receiver.requests[-1].body
        assert json.loads(body) == head
        t, v1 = (part.split("=", 1)[1] for part in headers["X-HITL-Signature"].split(","))
        expected = hmac.new(b"s3cret", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        assert v1 == expected
        assert WitnessState.objects.get(url=receiver.url).last_tree_size == head["tree_size"]
    finally:
        receiver.stop()


def test_the_minute_sweep_pushes_heads_to_the_witnesses_when_no_sequencer_runs(
    make_checkpoint, settings, tmp_path
):
    from hitlportal.sweeps import run_all

    path = tmp_path / "heads.jsonl"
    settings.HITL_LEDGER_WITNESSES = [f"file://{path}"]
    make_checkpoint()
    assert not TreeHead.objects.exists()  # nothing sequenced yet: no sequencer runs

    result = run_all()["ledger"]
    head = TreeHead.objects.order_by("-tree_size").get(tree_size=result["sequenced"])
    assert result == {"sequenced": head.tree_size, "witnessed": 1}
    assert [json.loads(line) for line in path.read_text().splitlines()] == [heads.as_json(head)]
    assert WitnessState.objects.get().last_tree_size == head.tree_size
    assert run_all()["ledger"] == {"sequenced": 0, "witnessed": 0}  # nothing new


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
    WitnessState.objects.create(url=url, last_attempt_at=long_ago)
    real_interval = witnesses._interval

    def other_publisher_claims_meanwhile(url: str) -> int:
        # Between this publisher's read of the state and its claim, the other one claims.
        WitnessState.objects.filter(url=url).update(last_attempt_at=timezone.now())
        return real_interval(url)

    monkeypatch.setattr(witnesses, "_interval", other_publisher_claims_meanwhile)
    assert witnesses.publish_due() == 0
    assert not path.exists()
