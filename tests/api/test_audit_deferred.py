"""audit.events.deferred() (what `audit.atomic()` opens for every transition and service):
events go in one INSERT at the end of the transaction, unsequenced (the ledger's sequencer
orders them after commit); and the closed vocabulary of verbs."""

from __future__ import annotations

import pytest
from django.db import transaction

from agents.models import Agent
from audit import events as audit
from audit.events import Actor
from audit.events import AuditVerb as V
from audit.models import AuditEvent
from core.ledger import sequencer

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


def test_it_appends_deferred_events_at_the_end_in_order(agent):
    audit.record(ACTOR, V.AGENT_CREATED, agent)
    with transaction.atomic(), audit.deferred():
        audit.record(ACTOR, V.AGENT_KEY_CREATED, agent, {"name": "k1"})
        with transaction.atomic():
            audit.record(ACTOR, V.AGENT_KEY_REVOKED, agent)
        assert list(AuditEvent.objects.values_list("verb", flat=True)) == [V.AGENT_CREATED]
    assert list(AuditEvent.objects.values_list("verb", "seq")) == [
        (V.AGENT_CREATED, None),
        (V.AGENT_KEY_CREATED, None),
        (V.AGENT_KEY_REVOKED, None),
    ]  # inserted unsequenced: the sequencer orders them
    sequencer.sequence_pending()
    assert list(AuditEvent.objects.values_list("verb", "seq")) == [
        (V.AGENT_CREATED, 1),
        (V.AGENT_KEY_CREATED, 2),
        (V.AGENT_KEY_REVOKED, 3),
    ]
    assert audit.verify_ledger().ok


def test_it_drops_events_of_a_rolled_back_savepoint(agent):
    with transaction.atomic(), audit.deferred():
        audit.record(ACTOR, V.AGENT_CREATED, agent)
        try:
            with transaction.atomic():
                Agent.objects.filter(pk=agent.pk).update(name="changed")
                audit.record(ACTOR, V.AGENT_KEY_REVOKED, agent)
                raise RuntimeError
        except RuntimeError:
            pass
    assert list(AuditEvent.objects.values_list("verb", flat=True)) == [V.AGENT_CREATED]
    assert audit.verify_ledger().ok


def test_it_appends_nothing_when_the_block_fails(agent):
    with pytest.raises(RuntimeError), transaction.atomic(), audit.deferred():
        audit.record(ACTOR, V.AGENT_CREATED, agent)
        raise RuntimeError
    assert not AuditEvent.objects.exists()


def test_transitions_defer_their_events_themselves_not_only_at_the_api_edge(make_checkpoint):
    """Outside any API request, a transition still appends its events only at the end of its
    transaction: while it runs (here: when it announces the new checkpoint), its event is not
    in the trail yet: it is inserted with the rest at the end."""
    from approvals.signals import checkpoint_requested

    seen = []

    def look(sender, checkpoint, **kwargs):
        seen.append(AuditEvent.objects.filter(verb=V.CHECKPOINT_REQUESTED).count())

    checkpoint_requested.connect(look, dispatch_uid="test-look")
    try:
        cp = make_checkpoint()
    finally:
        checkpoint_requested.disconnect(dispatch_uid="test-look")
    assert seen == [0]
    assert AuditEvent.objects.get(verb=V.CHECKPOINT_REQUESTED).target_id == str(cp.pk)
    assert audit.verify_ledger().ok


def test_it_refuses_a_verb_outside_the_vocabulary(agent):
    with pytest.raises(ValueError, match="unknown audit verb"), audit.atomic():
        audit.record(ACTOR, "agent.craeted", agent)
    assert not AuditEvent.objects.exists()
