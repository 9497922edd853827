"""Inclusion and consistency proofs (RFC 6962 2.1.1 / 2.1.2) for a signed tree head, built
from the stored nodes: every subtree a proof needs is read in one query per kind, in the
snapshot the head was read in (`read_snapshot`)."""

from __future__ import annotations

from django.db.models import Q

from core.ledger import entry_model, heads, merkle
from core.ledger.sequencer import LedgerCorrupt
from core.ledger.snapshot import read_snapshot
from core.models import LedgerNode, TreeHead


class ProofUnavailable(ValueError):
    """No such head, or a range outside it."""


def head_of_size(size: int | None) -> TreeHead:
    qs = TreeHead.objects.order_by("-tree_size")
    head = (qs.filter(tree_size=size) if size is not None else qs).first()
    if head is None:
        raise ProofUnavailable(
            "No signed tree head yet." if size is None else f"No signed head of size {size}."
        )
    return head


def _getter(needed: set[tuple[int, int]]):
    Entry = entry_model()
    leaves = [index + 1 for level, index in needed if level == 0]
    inner = [(level, index) for level, index in needed if level > 0]
    found: dict[tuple[int, int], bytes] = {}
    if leaves:
        for seq, value in Entry.objects.filter(seq__in=leaves).values_list("seq", "hash"):
            found[(0, seq - 1)] = bytes.fromhex(value)
    if inner:
        cond = Q()
        for level, index in inner:
            cond |= Q(level=level, index=index)
        for level, index, value in LedgerNode.objects.filter(cond).values_list(
            "level", "index", "hash"
        ):
            found[(level, index)] = bytes.fromhex(value)

    def get(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise LedgerCorrupt(f"tree node {level}/{index} is missing") from None

    return get


def inclusion(entry, size: int | None = None) -> dict:
    """The proof that `entry` (a sequenced entry row) is in the tree of head `size` (default:
    the latest head)."""
    with read_snapshot():
        head = head_of_size(size)
        if entry.seq is None:
            raise ProofUnavailable("This event is not in the log yet (waiting for the sequencer).")
        index = entry.seq - 1
        if index >= head.tree_size:
            raise ProofUnavailable(
                f"Event #{entry.seq} is newer than the head of size {head.tree_size}."
            )
        get = _getter(merkle.needed_for_inclusion(index, head.tree_size))
        path = merkle.inclusion_proof(index, head.tree_size, get)
    return {
        "seq": entry.seq,
        "leaf_index": index,
        "tree_size": head.tree_size,
        "leaf_hash": entry.hash,
        "audit_path": [h.hex() for h in path],
        "head": heads.as_json(head),
    }


def consistency(old: int, new: int | None = None) -> dict:
    """The proof that the tree of size `old` is a prefix of the head of size `new` (default:
    the latest head)."""
    with read_snapshot():
        head = head_of_size(new)
        if not 0 < old <= head.tree_size:
            raise ProofUnavailable(f"from must be 1..{head.tree_size}.")
        get = _getter(merkle.needed_for_consistency(old, head.tree_size))
        proof = merkle.consistency_proof(old, head.tree_size, get)
    return {
        "from": old,
        "to": head.tree_size,
        "proof": [h.hex() for h in proof],
        "head": heads.as_json(head),
    }
