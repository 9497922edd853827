"""core.ledger.merkle (the tree the sequencer keeps) against the independent reference."""

from __future__ import annotations

import pytest

from core.ledger import merkle
from tests.ledger import rfc6962 as ref

ENTRIES = [f"entry {i}".encode() for i in range(70)]


def stored(entries: list[bytes]):
    """Build a tree the way the sequencer does (batches of uneven size), keeping its nodes."""
    nodes: dict[tuple[int, int], bytes] = {}
    tree = merkle.Appender(0, [])
    for start in range(0, len(entries), 7):
        for i, e in enumerate(entries[start : start + 7], start):
            nodes[(0, i)] = merkle.leaf_hash(e)
            tree.append(nodes[(0, i)])
        nodes.update({(lv, ix): value for lv, ix, value in tree.new_nodes})
        tree.new_nodes.clear()
    return tree, lambda level, index: nodes[(level, index)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 70])
def test_it_computes_the_rfc_6962_root(n):
    tree, get = stored(ENTRIES[:n])
    assert tree.root == ref.mth(ENTRIES[:n])
    assert merkle.root(n, get) == ref.mth(ENTRIES[:n])
    again = merkle.Appender(n, [get(lv, ix) for lv, ix in merkle.peak_positions(n)])
    assert again.root == tree.root


def test_the_empty_tree_hashes_like_the_rfc():
    assert merkle.Appender(0, []).root == ref.mth([]) == merkle.EMPTY_ROOT


def test_it_makes_inclusion_proofs_the_reference_makes_and_verifies():
    _tree, get = stored(ENTRIES)
    for n in (1, 2, 3, 6, 8, 13, 32, 70):
        root = ref.mth(ENTRIES[:n])
        for m in range(n):
            proof = merkle.inclusion_proof(m, n, get)
            assert proof == ref.path(m, ENTRIES[:n])
            leaf = merkle.leaf_hash(ENTRIES[m])
            assert ref.verify_inclusion(m, n, leaf, proof, root)
            assert not ref.verify_inclusion(m, n, merkle.leaf_hash(b"forged"), proof, root)


def test_it_makes_consistency_proofs_the_reference_makes_and_verifies():
    _tree, get = stored(ENTRIES)
    for n in (1, 2, 5, 8, 9, 33, 70):
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, n, get)
            assert proof == ref.proof(m, ENTRIES[:n])
            assert ref.verify_consistency(m, n, ref.mth(ENTRIES[:m]), ref.mth(ENTRIES[:n]), proof)
            if m < n:
                forked = [*ENTRIES[: m - 1], b"rewritten", *ENTRIES[m:n]]
                assert not ref.verify_consistency(
                    m, n, ref.mth(forked[:m]), ref.mth(ENTRIES[:n]), proof
                )
