"""The audit chain: appends link up; out-of-band edits, deletes and inserts are caught."""

from __future__ import annotations

import itertools
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from approvals.audit import GENESIS_HASH, event_hash, verify_chain
from approvals.models import AuditEvent
from approvals.transitions import checkpoint_claim, checkpoint_decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(make_checkpoint, reviewer):
    cp = make_checkpoint()
    checkpoint_claim(cp.pk, reviewer)
    checkpoint_decide(cp.pk, reviewer, "approve", comment="ünïcode ✓ and {json}")
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) >= 5
    return events


def raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_event(seq: int, at, prev_hash: str, hash_: str, label: str = "mallory") -> None:
    raw(
        "INSERT INTO approvals_auditevent (seq, at, actor_type, actor_id, actor_label, verb, "
        "target_type, target_id, data, prev_hash, hash) "
        "VALUES (%s, %s, 'user', '1', %s, 'checkpoint.approved', 'approvals.checkpoint', "
        "'x', '{}', %s, %s)",
        [seq, at, label, prev_hash, hash_],
    )


def verify_command() -> str:
    try:
        call_command("verify_audit")
    except CommandError as exc:
        assert exc.returncode == 2
        return str(exc)
    return "OK"


def test_it_links_every_event_to_the_previous_one(chain):
    assert chain[0].seq == 1 and chain[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(chain):
        assert after.seq == before.seq + 1
        assert after.prev_hash == before.hash
    for event in chain:
        assert event_hash(event) == event.hash
    result = verify_chain()
    assert result.ok and result.checked == len(chain)
    assert verify_command() == "OK"


def test_it_catches_an_edited_row(chain):
    target = chain[2]
    data = dict(target.data, tampered=True)
    raw("UPDATE approvals_auditevent SET data = %s WHERE seq = %s", [json.dumps(data), target.seq])
    result = verify_chain()
    assert not result.ok and result.bad_seq == target.seq and "changed" in result.problem
    assert f"#{target.seq}" in verify_command()


def test_it_catches_an_edited_actor(chain):
    raw("UPDATE approvals_auditevent SET actor_label = 'mallory' WHERE seq = %s", [chain[-1].seq])
    assert verify_chain().bad_seq == chain[-1].seq


def test_it_catches_a_deleted_row(chain):
    raw("DELETE FROM approvals_auditevent WHERE seq = %s", [chain[1].seq])
    result = verify_chain()
    assert not result.ok and result.bad_seq == chain[2].seq and "gap" in result.problem
    assert "BROKEN" in verify_command()


def test_it_catches_a_deleted_tail_row_replaced_by_a_forgery(chain):
    last = chain[-1]
    raw("DELETE FROM approvals_auditevent WHERE seq = %s", [last.seq])
    insert_event(last.seq, last.at, last.prev_hash, "f" * 64)
    assert verify_chain().bad_seq == last.seq


def test_it_catches_an_inserted_row(chain):
    last = chain[-1]
    insert_event(last.seq + 1, last.at, "e" * 64, "d" * 64)
    result = verify_chain()
    assert result.bad_seq == last.seq + 1 and "prev_hash" in result.problem


def test_it_catches_an_inserted_row_with_a_valid_looking_link(chain):
    """An inserter who links to the real head but cannot produce the right hash for their
    content is caught by the content hash."""
    last = chain[-1]
    insert_event(last.seq + 1, last.at, last.hash, "c" * 64)
    result = verify_chain()
    assert result.bad_seq == last.seq + 1 and "changed" in result.problem


def test_admin_offers_no_change_or_delete(admin_client, chain):
    response = admin_client.get(f"/admin/approvals/auditevent/{chain[0].pk}/change/")
    assert response.status_code == 200
    assert b'name="_save"' not in response.content
    response = admin_client.post(
        f"/admin/approvals/auditevent/{chain[0].pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=chain[0].pk).exists()
    assert verify_chain().ok
