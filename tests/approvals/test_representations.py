"""Representations are pure functions of rows: building a checkpoint's JSON only reads (no
INSERT, UPDATE or savepoint, never the sequencer), whatever the checkpoint's state. Waiting
for the ledger is the edges' explicit call, `approvals.receipts.await_sealed`."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals import receipts
from approvals.models import Checkpoint
from approvals.representations import checkpoint_data
from approvals.transitions import checkpoint_decide
from audit import events as audit
from audit.models import AuditEvent
from core.ledger import sequencer
from core.ledger.receipts import open_token
from core.ledger.verify import public_keys

pytestmark = pytest.mark.django_db


def _boom(*args, **kwargs):
    raise AssertionError("the sequencer was asked to run or waited for")


@pytest.fixture
def forbid_sequencing(monkeypatch):
    """Call it to fail the test if anything then runs the sequencer or waits for it."""

    def forbid() -> None:
        for module in (sequencer, receipts):
            monkeypatch.setattr(module, "ensure_sequenced", _boom, raising=False)
        monkeypatch.setattr(sequencer, "run_batch", _boom)

    return forbid


@pytest.fixture
def no_sequencing(forbid_sequencing):
    forbid_sequencing()


def built(cp: Checkpoint) -> dict:
    """checkpoint_data of a freshly loaded row, asserting that every query was a SELECT."""
    cp = Checkpoint.objects.select_related("agent", "policy", "policy_version").get(pk=cp.pk)
    with CaptureQueriesContext(connection) as queries:
        data = checkpoint_data(cp)
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert writes == []
    return data


def test_it_only_reads_a_pending_checkpoint(make_checkpoint, no_sequencing):
    data = built(make_checkpoint())
    assert data["status"] == "pending" and data["decision"] is None


def test_it_only_reads_an_approval_not_yet_in_the_ledger(make_checkpoint, reviewer, no_sequencing):
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")  # the test's transaction never commits
    event = AuditEvent.objects.get(verb="checkpoint.approved", target_id=str(cp.pk))
    assert event.seq is None
    decision = built(cp)["decision"]
    assert decision["outcome"] == "approve"
    assert decision["ledger"]["event"] == event.pk
    assert (decision["ledger"]["seq"], decision["receipt"]) == (None, None)


def test_it_only_reads_a_sequenced_approval_and_signs_its_receipt(
    make_checkpoint, reviewer, forbid_sequencing
):
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")
    sequencer.sequence_pending()
    forbid_sequencing()
    event = AuditEvent.objects.get(verb="checkpoint.approved", target_id=str(cp.pk))
    decision = built(cp)["decision"]
    assert decision["ledger"]["seq"] == event.seq is not None
    assert open_token(decision["receipt"], public_keys())["seq"] == event.seq


def test_await_sealed_gets_the_approval_into_the_ledger_for_the_edge(make_checkpoint, reviewer):
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")
    cp.refresh_from_db()
    pk, seq = receipts.await_sealed(cp)  # sync mode (tests): sequenced in-process
    event = AuditEvent.objects.get(verb="checkpoint.approved", target_id=str(cp.pk))
    assert (pk, seq) == (event.pk, event.seq) and seq is not None
    assert checkpoint_data(cp, event=(pk, seq))["decision"]["receipt"]


def test_await_sealed_does_not_wait_inside_the_resolving_transaction(
    make_checkpoint, reviewer, settings, no_sequencing
):
    """As deployed (the sequencer runs elsewhere): no sequencer sees the transaction's own
    event before it commits, so the decision response is answered at once, seq null."""
    settings.HITL_LEDGER_SYNC = False
    cp = make_checkpoint()
    with audit.atomic():
        result = checkpoint_decide(cp.pk, reviewer, "approve")
        event = receipts.await_sealed(result.checkpoint)  # flushes the deferred events
        assert event is not None and event[1] is None
        assert AuditEvent.objects.filter(pk=event[0], verb="checkpoint.approved").exists()


def test_await_sealed_has_nothing_to_wait_for_while_pending(make_checkpoint, no_sequencing):
    assert receipts.await_sealed(make_checkpoint()) is None
