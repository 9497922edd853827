"""Someone with write access to the database tampers with the audit trail (raw SQL, using
the project's own hashing code where that helps them). Every case is detected, given a head
published before the tampering: by `hitl verify --full` keeping its state file like a
witness, and by `manage.py verify_audit --trusted-head`."""

from __future__ import annotations

import json

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from approvals.services import USER_TOKENS
from approvals.transitions import checkpoint_claim, checkpoint_decide
from audit.entry import entry_v1
from audit.models import AuditEvent
from core.ledger import heads, merkle, sequencer
from core.ledger.keys import generate_seed
from core.models import LedgerNode, TreeHead
from hitl_client import HitlClient
from tests.ledger.conftest import DjangoTransport

pytestmark = pytest.mark.django_db


def raw(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def leaf_for(row: dict) -> str:
    return merkle.leaf_hash(entry_v1(**row)).hex()


def rows() -> list[dict]:
    fields = ["seq", "at", "actor_type", "actor_id", "actor_label", "verb", "target_type"]
    fields += ["target_id", "data"]
    return list(AuditEvent.objects.filter(seq__isnull=False).order_by("seq").values(*fields))


def rehash_everything() -> None:
    """What a careful attacker does after changing rows: recompute every leaf hash with the
    project's code and rebuild the stored tree from them."""
    tree = merkle.Appender(0, [])
    for row in rows():
        leaf = leaf_for(row)
        raw("UPDATE approvals_auditevent SET hash = %s WHERE seq = %s", [leaf, row["seq"]])
        tree.append(bytes.fromhex(leaf))
    LedgerNode.objects.all().delete()
    LedgerNode.objects.bulk_create(
        [LedgerNode(level=lv, index=ix, hash=h.hex()) for lv, ix, h in tree.new_nodes]
    )


def shift_seqs_from(seq: int, by: int) -> None:
    raw("UPDATE approvals_auditevent SET seq = seq + 1000000 WHERE seq >= %s", [seq])
    raw("UPDATE approvals_auditevent SET seq = seq - 1000000 + %s WHERE seq >= 1000000", [by])


def insert_event(seq: int, label: str, leaf: str | None = None) -> None:
    row = {
        "seq": seq,
        "at": AuditEvent.objects.order_by("-pk").values_list("at", flat=True).first(),
        "actor_type": "user",
        "actor_id": "1",
        "actor_label": label,
        "verb": "checkpoint.approved",
        "target_type": "approvals.checkpoint",
        "target_id": "forged",
        "data": {},
    }
    raw(
        "INSERT INTO approvals_auditevent (seq, hash, at, actor_type, actor_id, actor_label, "
        "verb, target_type, target_id, data) VALUES (%s, %s, %s, 'user', '1', %s, "
        "'checkpoint.approved', 'approvals.checkpoint', 'forged', '{}')",
        [seq, leaf or leaf_for(row), row["at"], label],
    )


def truncate(keep: int) -> None:
    """Remove the tail: events, and the heads and nodes that would give it away."""
    raw("DELETE FROM approvals_auditevent WHERE seq > %s", [keep])
    raw("DELETE FROM core_treehead WHERE tree_size > %s", [keep])
    rehash_everything()


# --- the cases -------------------------------------------------------------------------------


def edit_middle(n):
    raw("UPDATE approvals_auditevent SET data = %s WHERE seq = %s", [json.dumps({"x": 1}), n // 2])


def edit_actor(n):
    raw("UPDATE approvals_auditevent SET actor_label = 'mallory' WHERE seq = %s", [n - 1])


def delete_middle(n):
    raw("DELETE FROM approvals_auditevent WHERE seq = %s", [n // 2])


def insert_middle(n):
    shift_seqs_from(n // 2, 1)
    insert_event(n // 2, "mallory")


def forged_append(n):
    insert_event(n + 1, "mallory")
    rehash_everything()  # the tree looks complete; only a head is missing (no key)


def truncate_tail(n):
    truncate(n - 1)


def truncate_tenth(n):
    truncate(n - max(1, n // 10))


def rewrite_from_middle(n):
    raw("UPDATE approvals_auditevent SET actor_label = 'mallory' WHERE seq >= %s", [n // 2])
    rehash_everything()


def change_approver_and_recompute(n):
    raw(
        "UPDATE approvals_auditevent SET actor_label = 'mallory', actor_id = '999' "
        "WHERE verb = 'checkpoint.approved'"
    )
    rehash_everything()


def rewrite_with_new_key(n, settings):
    """Everything rewritten and re-signed with a key of the attacker's, which the portal now
    serves at /ledger/keys."""
    change_approver_and_recompute(n)
    TreeHead.objects.all().delete()
    settings.HITL_LEDGER_SIGNING_KEY = generate_seed()
    tree = merkle.Appender(0, [])
    for row in rows():
        tree.append(bytes.fromhex(leaf_for(row)))
    sequencer.sign_head(tree.size, tree.root)


CASES = [
    edit_middle,
    edit_actor,
    delete_middle,
    insert_middle,
    forged_append,
    truncate_tail,
    truncate_tenth,
    rewrite_from_middle,
    change_approver_and_recompute,
    rewrite_with_new_key,
]


@pytest.fixture
def published(make_checkpoint, reviewer, manager, api_as, tmp_path):
    """A log with history; `hitl verify --full` ran once (its state file holds the head), and
    the same head went to a witness file."""
    for i in range(6):
        cp = make_checkpoint(title=f"job {i}")
        checkpoint_claim(cp.pk, reviewer)
        checkpoint_decide(cp.pk, reviewer, "approve" if i % 2 else "reject", comment="ok")
        if i == 2:
            sequencer.sequence_pending()  # more than one head
    sequencer.sequence_pending()
    auditor = api_as(USER_TOKENS.create(manager))
    state = tmp_path / "ledger-state.json"
    first = auditor.verify_ledger(state, full=True)
    assert first.ok, first.problems
    head = heads.as_json(TreeHead.objects.order_by("-tree_size").first())
    assert json.loads(state.read_text())["head"] == head
    witness = tmp_path / "witness-head.json"
    witness.write_text(json.dumps(head))
    return auditor, state, witness, head


def test_an_untampered_log_verifies_every_way(published):
    auditor, state, witness, head = published
    assert auditor.verify_ledger(state, full=True).ok
    out = call(witness)
    assert out.startswith(f"ledger OK: {head['tree_size']} events")


@pytest.mark.parametrize("tamper", CASES, ids=[c.__name__ for c in CASES])
def test_it_detects_tampering(tamper, published, settings):
    auditor, state, witness, head = published
    n = head["tree_size"]
    if tamper is rewrite_with_new_key:
        tamper(n, settings)
    else:
        tamper(n)
    report = auditor.verify_ledger(state, full=True)
    assert not report.ok, f"hitl verify missed {tamper.__name__}"
    assert json.loads(state.read_text())["head"] == head  # the witness keeps the good head
    with pytest.raises(CommandError) as failure:
        call(witness)
    assert failure.value.returncode == 2
    assert "BROKEN" in str(failure.value)


class Relocating(DjangoTransport):
    """A portal that lies about where an event is in the log: its inclusion proofs say
    the event is one place further than the leaf they prove."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("/ledger/proof/inclusion"):
            return response
        body = json.loads(response.content)
        body["seq"] += 1
        return httpx.Response(response.status_code, json=body)


def test_it_catches_a_portal_that_shows_an_event_at_another_place(published):
    auditor, state, _witness, _head = published
    event = AuditEvent.objects.filter(verb="checkpoint.approved").order_by("seq").first()
    honest = auditor.verify_ledger(state, events=[event.pk])
    assert honest.ok and honest.events == [{"event": event.pk, "seq": event.seq, "included": True}]
    saved = state.read_text()

    liar = HitlClient("http://testserver", auditor.api_key, transport=Relocating(), retries=0)
    report = liar.verify_ledger(state, events=[event.pk])
    assert not report.ok
    assert report.problems == [
        f"event {event.pk}: shown as #{event.seq + 1} but proved at leaf index "
        f"{event.seq - 1} (#{event.seq})"
    ]
    assert report.events == [{"event": event.pk, "seq": event.seq + 1, "included": False}]
    assert state.read_text() == saved  # a failed run keeps the last good state


def call(trusted) -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", "--trusted-head", str(trusted), stdout=out)
    return out.getvalue()
