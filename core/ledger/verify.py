"""Verify the whole log from the rows, as an auditor with database access would: each
entry's leaf hash recomputed from its content, no gap in `seq`, the root of every signed
head recomputed from those leaves (and its signature checked), nothing sequenced beyond the
latest head, and, given a head published before (`trusted_head`), that the log still extends
it. The stored tree nodes are not trusted for any of this; proofs served from them are
checked by clients against signed roots (`hitl verify`).

All of it is read in one snapshot (`read_snapshot`): the heads and the entries of the same
moment, however busy the sequencer is."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.ledger import entry_model, heads, merkle
from core.ledger.keys import LedgerKeyError, parse_public_key
from core.ledger.sequencer import signer
from core.ledger.snapshot import read_snapshot
from core.models import TreeHead


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    bad_seq: int | None = None
    problem: str = ""
    tree_size: int = 0
    root_hash: str = ""
    pending: int = 0
    oldest_pending: dt.datetime | None = None
    head: dict[str, Any] | None = None  # the latest signed head, read with the entries


def public_keys(extra: list[str] | None = None) -> dict[str, Any]:
    """key id → public key: the signing key's and HITL_LEDGER_PREVIOUS_KEYS (or only
    `extra`, base64 public keys, when given)."""
    from core.ledger.keys import key_id

    texts = extra if extra else settings.HITL_LEDGER_PREVIOUS_KEYS
    keys = {} if extra else {signer().key_id: signer().public}
    for text in texts:
        try:
            key = parse_public_key(text)
        except LedgerKeyError as exc:
            raise ValueError(f"public key {text[:12]}...: {exc}") from None
        keys[key_id(key)] = key
    return keys


def verify_log(
    *, trusted_head: dict | None = None, keys: dict[str, Any] | None = None
) -> VerifyResult:
    keys = keys if keys is not None else public_keys()
    with read_snapshot():
        return _verify(trusted_head, keys)


def _verify(trusted_head: dict | None, keys: dict[str, Any]) -> VerifyResult:
    Entry = entry_model()
    signed = list(TreeHead.objects.order_by("tree_size"))
    roots: dict[int, tuple[str, str]] = {}
    for head in signed:
        problem = heads.check(heads.as_json(head), keys)
        if problem:
            return VerifyResult(False, 0, problem=f"signed head: {problem}")
        roots[head.tree_size] = (head.root_hash, f"the signed head of size {head.tree_size}")
    latest = signed[-1].tree_size if signed else 0
    if trusted_head is not None:
        problem = heads.check(trusted_head, keys)
        if problem:
            return VerifyResult(False, 0, problem=f"trusted head: {problem}")
        size = int(trusted_head["tree_size"])
        if size > latest:
            return VerifyResult(
                False,
                0,
                bad_seq=latest + 1,
                problem=f"the log was truncated: the trusted head has {size} events, the "
                f"latest signed head only {latest}",
            )
        if roots.get(size, (trusted_head["root_hash"],))[0] != trusted_head["root_hash"]:
            return VerifyResult(
                False,
                0,
                problem=f"the signed head of size {size} differs from the trusted one (forked)",
            )
        roots[size] = (trusted_head["root_hash"], f"the trusted head of size {size}")

    tree = merkle.Appender(0, [])
    expected = 1
    for row in Entry.objects.filter(seq__isnull=False).order_by("seq").iterator(chunk_size=2000):
        if row.seq != expected:
            return _broken(tree, expected, f"event #{expected} is missing (deleted or renumbered)")
        if row.seq > latest:
            return _broken(
                tree,
                row.seq,
                f"event #{row.seq} is not covered by any signed head (written outside the "
                "sequencer)",
            )
        leaf = merkle.leaf_hash(row.ledger_entry())
        if row.hash != leaf.hex():
            return _broken(tree, row.seq, "its content does not match its leaf hash (changed)")
        tree.append(leaf)
        expected += 1
        if tree.size in roots and tree.root.hex() != roots[tree.size][0]:
            return _broken(
                tree,
                None,
                f"the first {tree.size} events do not hash to {roots[tree.size][1]} (history "
                "rewritten)",
            )
    if tree.size < latest:
        return _broken(
            tree,
            tree.size + 1,
            f"the signed head of size {latest} covers events #{tree.size + 1}-#{latest}, which "
            "are missing (truncated)",
        )
    pending = Entry.objects.filter(seq__isnull=True)
    oldest = None
    if any(f.name == "at" for f in Entry._meta.fields):
        oldest = pending.order_by("pk").values_list("at", flat=True).first()
    return VerifyResult(
        True,
        tree.size,
        tree_size=tree.size,
        root_hash=tree.root.hex(),
        pending=pending.count(),
        oldest_pending=oldest,
        head=heads.as_json(signed[-1]) if signed else None,
    )


def _broken(tree: merkle.Appender, seq: int | None, problem: str) -> VerifyResult:
    return VerifyResult(False, tree.size, bad_seq=seq, problem=problem, tree_size=tree.size)


def lag_seconds(result: VerifyResult) -> float:
    if result.oldest_pending is None:
        return 0.0
    return max(0.0, (timezone.now() - result.oldest_pending).total_seconds())
