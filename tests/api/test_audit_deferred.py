"""approvals.audit.deferred(), which the API uses so concurrent POSTs hold the audit-chain
lock only for their last statement."""

from __future__ import annotations

import pytest
from django.db import transaction

from agents.models import Agent
from approvals import audit
from approvals.audit import Actor
from approvals.models import AuditEvent

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


def test_it_appends_deferred_events_at_the_end_in_order(agent):
    audit.record(ACTOR, "before", agent)
    with transaction.atomic(), audit.deferred():
        audit.record(ACTOR, "one", agent, {"n": 1})
        with transaction.atomic():
            audit.record(ACTOR, "two", agent)
        assert list(AuditEvent.objects.values_list("verb", flat=True)) == ["before"]
    assert list(AuditEvent.objects.values_list("verb", "seq")) == [
        ("before", 1),
        ("one", 2),
        ("two", 3),
    ]
    assert audit.verify_chain().ok


def test_it_drops_events_of_a_rolled_back_savepoint(agent):
    with transaction.atomic(), audit.deferred():
        audit.record(ACTOR, "kept", agent)
        try:
            with transaction.atomic():
                Agent.objects.filter(pk=agent.pk).update(name="changed")
                audit.record(ACTOR, "rolled back", agent)
                raise RuntimeError
        except RuntimeError:
            pass
    assert list(AuditEvent.objects.values_list("verb", flat=True)) == ["kept"]
    assert audit.verify_chain().ok


def test_it_appends_nothing_when_the_block_fails(agent):
    with pytest.raises(RuntimeError), transaction.atomic(), audit.deferred():
        audit.record(ACTOR, "lost", agent)
        raise RuntimeError
    assert not AuditEvent.objects.exists()
