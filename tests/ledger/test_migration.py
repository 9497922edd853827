"""Existing hash chains migrate: their events become the first leaves of the tree, in `seq`
order, and the sequencer signs them; a broken chain is refused rather than signed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.events import verify_ledger
from audit.models import AuditEvent
from core.ledger import sequencer
from core.models import TreeHead

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BEFORE = [("approvals", "0003_auditevent_verb_vocabulary"), ("core", None)]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def old_chain(n: int, *, break_at: int | None = None) -> None:
    """Events as the old code wrote them: sha256 over canonical JSON with prev_hash."""
    prev = "0" * 64
    at = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
    with connection.cursor() as cursor:
        for seq in range(1, n + 1):
            data = {"n": seq}
            payload = json.dumps(
                {
                    "seq": seq,
                    "at": at.isoformat(timespec="microseconds"),
                    "actor": ["system", "", "old"],
                    "verb": "run.started",
                    "target": ["agents.run", f"r{seq}"],
                    "data": data,
                    "prev_hash": prev,
                },
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            digest = hashlib.sha256(payload.encode()).hexdigest()
            if seq == break_at:
                data = {"n": -1}  # changed after hashing
            cursor.execute(
                "INSERT INTO approvals_auditevent (seq, at, actor_type, actor_id, actor_label, "
                "verb, target_type, target_id, data, prev_hash, hash) VALUES "
                "(%s, %s, 'system', '', 'old', 'run.started', 'agents.run', %s, %s, %s, %s)",
                [seq, at, f"r{seq}", json.dumps(data), prev, digest],
            )
            prev = digest


def test_the_old_chain_becomes_the_first_leaves():
    migrate(BEFORE)
    try:
        old_chain(25)
        migrate(latest())
        assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(
            range(1, 26)
        )
        sequencer.sequence_pending()
        assert TreeHead.objects.order_by("-tree_size").first().tree_size == 25
        result = verify_ledger()
        assert result.ok and result.checked == 25
    finally:
        migrate(latest())


def test_a_broken_old_chain_is_not_signed_into_the_ledger():
    migrate(BEFORE)
    try:
        old_chain(5, break_at=3)
        with pytest.raises(RuntimeError, match="event #3 was changed"):
            migrate(latest())
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM approvals_auditevent")
        migrate(latest())
