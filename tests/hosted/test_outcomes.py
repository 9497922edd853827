"""A run shows what it came to in words (action executed / partially done / nothing done and
why / failed), in the list and on its page, with the final report rendered, not raw JSON."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Run
from agents.outcomes import annotate_outcomes, outcome_for
from agents.transitions import run_cancel, run_complete, run_fail
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_decide, checkpoint_expire
from audit.events import Actor
from tests.factories import UserFactory

TRANSFER = {"tool": "transfer", "args": {"amount": 100, "to": "acme"}}
SECOND = {"tool": "transfer", "args": {"amount": 5, "to": "bob"}}

pytestmark = pytest.mark.django_db


def pending(run):
    return list(Checkpoint.objects.filter(run=run, status="pending").order_by("created_at"))


def test_a_hosted_run_that_did_its_action(ledger_agent, start, inline, reviewer, sandbox):
    run = start(ledger_agent([[TRANSFER]]))
    inline(checkpoint_decide, pending(run)[0].pk, reviewer, "approve")
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert outcome_for(run).text == "action executed"
    annotated = annotate_outcomes(Run.objects.filter(pk=run.pk)).get()
    assert outcome_for(annotated) == outcome_for(run)


def test_a_hosted_run_whose_action_was_rejected(ledger_agent, start, inline, reviewer, sandbox):
    run = start(ledger_agent([[TRANSFER]]))
    inline(
        checkpoint_decide, pending(run)[0].pk, reviewer, "reject", comment="acme is not a customer"
    )
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED  # "completed" alone would hide that nothing ran
    assert outcome_for(run).text == "nothing done — 1 rejected"


def test_a_hosted_run_partially_done(ledger_agent, start, inline, reviewer, sandbox):
    run = start(ledger_agent([[TRANSFER, SECOND]]))
    first, second = pending(run)
    inline(checkpoint_decide, first.pk, reviewer, "approve")
    inline(checkpoint_decide, second.pk, reviewer, "reject", comment="not today")
    run.refresh_from_db()
    assert outcome_for(run).code == "partial"
    assert outcome_for(run).text == "partially done: 1 executed, 1 rejected"


def test_external_runs(make_checkpoint, agent, reviewer):
    approved = make_checkpoint()
    checkpoint_decide(approved.pk, reviewer, "approve")
    run = run_complete(approved.run_id, Actor.for_agent(agent))
    assert outcome_for(run).text == "action executed"

    expired = make_checkpoint(expires_in=1)
    import time_machine
    from django.utils import timezone

    with time_machine.travel(timezone.now() + __import__("datetime").timedelta(seconds=5)):
        checkpoint_expire(expired.pk)
    run = run_complete(expired.run_id, Actor.for_agent(agent))
    assert outcome_for(run).text == "nothing done — 1 expired"

    waiting = make_checkpoint()
    assert outcome_for(Run.objects.get(pk=waiting.run_id)).text == "waiting for a human"
    run = run_cancel(waiting.run_id, Actor.for_agent(agent), reason="no longer needed")
    assert outcome_for(run).text == "nothing done — run cancelled"

    broken = make_checkpoint()
    run = run_fail(broken.run_id, Actor.for_agent(agent), error="crashed")
    assert outcome_for(run).text == "failed — nothing done"


def test_the_run_pages_say_it_in_words_and_render_the_report(
    ledger_agent, start, inline, reviewer, sandbox
):
    run = start(ledger_agent([[TRANSFER, SECOND]]))
    first, second = pending(run)
    inline(checkpoint_decide, first.pk, reviewer, "approve")
    inline(checkpoint_decide, second.pk, reviewer, "reject", comment="not today")
    from django.contrib.auth.models import Group, Permission

    manager = UserFactory(username="max", roles=["managers"])
    Group.objects.get(name="managers").permissions.add(
        *Permission.objects.filter(codename__in=["view_run", "view_runstep", "view_runevent"])
    )
    c = Client(HTTP_HOST="127.0.0.1")
    c.force_login(manager, backend="django.contrib.auth.backends.ModelBackend")
    listing = c.get(reverse("admin:agents_run_changelist")).content.decode()
    assert "partially done: 1 executed, 1 rejected" in listing
    page = c.get(reverse("admin:agents_run_change", args=[run.pk])).content.decode()
    assert "partially done: 1 executed, 1 rejected" in page
    done = re.search(r'<ul class="report-done">(.*?)</ul>', page, re.S).group(1)
    not_done = re.search(r'<ul class="report-not-done">(.*?)</ul>', page, re.S).group(1)
    assert "transfer" in done and "acme" in done and "approved by rita" in done
    assert "bob" in not_done and "not today" in not_done
    assert "&quot;not_done&quot;" not in page  # no raw JSON dump of the report
