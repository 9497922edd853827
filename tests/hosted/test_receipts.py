"""The hosted runtime spends the approval's receipt right before the side effect: the exact
approved action, once; anything else is refused and asked again."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from agents.models import Run, RunStep
from agents.tasks import resume_run
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_decide
from audit.models import AuditEvent
from core.models import Receipt
from tests.hosted.agents import ledger_lines

TRANSFER = {"tool": "transfer", "args": {"amount": 100, "to": "acme"}}


def test_it_redeems_the_receipt_right_before_the_effect(
    ledger_agent, start, inline, reviewer, sandbox
):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()
    inline(checkpoint_decide, cp.pk, reviewer, "approve")
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    receipt = Receipt.objects.get()
    step = RunStep.objects.get(run=run)
    assert receipt.redeemed_by == f"run:{run.pk}:{step.key}"
    redeemed = AuditEvent.objects.get(verb="receipt.redeemed")
    executed = AuditEvent.objects.get(verb="run.step_executed")
    approved = AuditEvent.objects.get(verb="checkpoint.approved")
    assert approved.pk < redeemed.pk < executed.pk  # redeemed before the effect was recorded
    assert redeemed.data["approval_seq"] == approved.seq
    assert redeemed.data["action_sha256"] == executed.data["args_sha256"]
    assert len(ledger_lines(sandbox / "ledger.txt")) == 1


def test_an_action_that_differs_from_the_approved_one_is_refused_and_asked_again(
    ledger_agent, start, inline, reviewer, sandbox
):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()
    checkpoint_decide(cp.pk, reviewer, "approve")  # the resume has not run yet
    # Someone with database access changes the approved action before the run resumes.
    Checkpoint.objects.filter(pk=cp.pk).update(
        final_action={"tool": "transfer", "args": {"amount": 100000, "to": "mallory"}}
    )
    inline(resume_run, str(run.pk))
    run.refresh_from_db()
    assert not (sandbox / "ledger.txt").exists()  # nothing ran
    assert run.status == Run.Status.WAITING
    fresh = run.checkpoints.exclude(pk=cp.pk).get()
    assert fresh.status == Checkpoint.Status.PENDING
    assert "not the action that was approved" in fresh.context["stale_reason"]
    assert Receipt.objects.get(claims__checkpoint=str(cp.pk)).redeemed_at is None


def test_an_expired_receipt_is_asked_again(ledger_agent, start, inline, reviewer, sandbox):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()
    checkpoint_decide(cp.pk, reviewer, "approve")
    Receipt.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))  # time passed
    inline(resume_run, str(run.pk))
    run.refresh_from_db()
    assert not (sandbox / "ledger.txt").exists()
    fresh = run.checkpoints.exclude(pk=cp.pk).get()
    assert "expired" in fresh.context["stale_reason"]
    assert Receipt.objects.get(claims__checkpoint=str(cp.pk)).redeemed_at is None
