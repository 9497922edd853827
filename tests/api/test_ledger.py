"""The ledger API: heads and keys (public), inclusion and consistency proofs that verify
against the independent RFC 6962 reference, the entries for managers, and the seq on every
decision and webhook."""

from __future__ import annotations

import pytest

from approvals.services import USER_TOKENS
from approvals.transitions import checkpoint_decide
from audit.models import AuditEvent
from core.ledger import sequencer
from core.models import TreeHead
from hitl_client.ledger import head_problem
from tests.api.conftest import Api
from tests.ledger import rfc6962 as ref

pytestmark = pytest.mark.django_db


def decided(ask, reviewer, n: int = 3) -> list[dict]:
    out = []
    for i in range(n):
        cp = ask(title=f"t{i}")
        checkpoint_decide(cp["id"], reviewer, "approve")
        out.append(cp)
    sequencer.sequence_pending()
    return out


def test_heads_and_keys_are_public_and_signed(ask, reviewer, anon):
    decided(ask, reviewer)
    head = anon.get("ledger/head").json()
    keys = anon.get("ledger/keys").json()
    assert head["tree_size"] == AuditEvent.objects.count()
    assert [k["current"] for k in keys["keys"]] == [True]
    assert head_problem(head, {k["key_id"]: k["public_key"] for k in keys["keys"]}) == ""
    older = TreeHead.objects.order_by("tree_size").first()
    assert anon.get("ledger/head", tree_size=older.tree_size).json()["root_hash"] == older.root_hash
    assert anon.get("ledger/head", tree_size=999999).status_code == 404
    assert anon.get("ledger/head", tree_size="x").status_code == 400


def test_inclusion_proofs_verify_against_the_reference(ask, api, reviewer):
    decided(ask, reviewer)
    head = api.get("ledger/head").json()
    for event in AuditEvent.objects.all():
        if event.target_type == "agents.agent":
            continue  # not the agent's to see
        proof = api.get("ledger/proof/inclusion", event=event.pk).json()
        leaf = ref.h(b"\x00" + proof["entry"].encode())
        assert leaf.hex() == event.hash == proof["leaf_hash"]
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        assert ref.verify_inclusion(
            proof["leaf_index"], head["tree_size"], leaf, path, bytes.fromhex(head["root_hash"])
        )


def test_consistency_proofs_verify_against_the_reference(ask, reviewer, anon):
    decided(ask, reviewer, 2)
    old = anon.get("ledger/head").json()
    decided(ask, reviewer, 3)
    new = anon.get("ledger/head").json()
    proof = anon.get("ledger/proof/consistency", **{"from": old["tree_size"]}).json()
    assert proof["to"] == new["tree_size"]
    assert ref.verify_consistency(
        old["tree_size"],
        new["tree_size"],
        bytes.fromhex(old["root_hash"]),
        bytes.fromhex(new["root_hash"]),
        [bytes.fromhex(h) for h in proof["proof"]],
    )
    assert anon.get("ledger/proof/consistency", **{"from": 10**6}).status_code == 404
    assert anon.get("ledger/proof/consistency").status_code == 400


def test_proofs_and_entries_are_for_those_who_may_see_them(ask, api, other_api, reviewer, manager):
    decided(ask, reviewer, 1)
    event = AuditEvent.objects.get(verb="checkpoint.approved")
    assert other_api.get("ledger/proof/inclusion", event=event.pk).status_code == 404
    assert api.get("ledger/proof/inclusion", event=event.pk).status_code == 200
    assert api.get("ledger/entries").status_code == 403
    entries = Api(USER_TOKENS.create(manager)).get("ledger/entries", start=1, limit=2).json()
    assert [e["seq"] for e in entries["entries"]] == [1, 2] and entries["next_start"] == 3


def test_a_decision_returned_by_the_api_carries_its_seq_once_sequenced(ask, reviewer_api, settings):
    settings.HITL_LEDGER_SYNC = False  # as in production: the sequencer runs elsewhere
    cp = ask()
    body = reviewer_api.post(f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"}).json()
    ledger = body["checkpoint"]["decision"]["ledger"]
    assert ledger["seq"] is None  # committed, not logged yet: the merge delay
    sequencer.sequence_pending()
    again = reviewer_api.get(f"checkpoints/{cp['id']}/").json()["decision"]
    event = AuditEvent.objects.get(verb="checkpoint.approved")
    assert again["ledger"] == {**ledger, "seq": event.seq} and again["receipt"]
