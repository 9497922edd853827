"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs, over leaf hashes kept elsewhere.

    leaf hash  H(0x00 || entry)          node hash  H(0x01 || left || right)
    MTH(D[n])  = H(1 || MTH(D[0:k]) || MTH(D[k:n]))  with k the largest power of 2 below n

Storage-independent: a tree is read through `get(level, index)`, which returns the hash of
the complete subtree of 2**level leaves starting at leaf `index * 2**level` (level 0: the
leaves). Complete subtrees never change once written, so they can be stored forever and a
proof for any tree size is built from O(log² n) of them. Appending keeps only the "peaks"
(the complete subtrees along the right edge), so each batch costs O(batch + log n).
Pure Python, no Django.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

Getter = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def peak_positions(size: int) -> list[tuple[int, int]]:
    """(level, index) of the complete subtrees that make up a tree of `size` leaves, left to
    right: one per set bit of `size`."""
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            out.append((level, start >> level))
            start += 1 << level
    return out


def root_from_peaks(peaks: list[bytes]) -> bytes:
    """MTH of a tree given its peaks (left to right): folded from the right."""
    if not peaks:
        return EMPTY_ROOT
    root = peaks[-1]
    for peak in reversed(peaks[:-1]):
        root = node_hash(peak, root)
    return root


class Appender:
    """Extend a tree of `size` leaves whose peaks are known; collects the complete subtrees
    (level >= 1) that the new leaves finish, for storage."""

    def __init__(self, size: int, peaks: list[bytes]):
        positions = peak_positions(size)
        if len(positions) != len(peaks):
            raise ValueError(f"a tree of {size} leaves has {len(positions)} peaks")
        self.size = size
        self._peaks = [(level, h) for (level, _i), h in zip(positions, peaks, strict=True)]
        self.new_nodes: list[tuple[int, int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        level, value, index = 0, leaf, self.size
        while self._peaks and self._peaks[-1][0] == level:
            _lvl, left = self._peaks.pop()
            value = node_hash(left, value)
            level += 1
            index >>= 1
            self.new_nodes.append((level, index, value))
        self._peaks.append((level, value))
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    @property
    def peaks(self) -> list[bytes]:
        return [h for _level, h in self._peaks]

    @property
    def root(self) -> bytes:
        return root_from_peaks(self.peaks)


# --- reading a stored tree ------------------------------------------------------------------


def _range_parts(start: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees (level, index) whose MTH composes MTH(D[start:end]), for a range
    that RFC 6962's recursion produces (start aligned to a power of two >= end - start)."""
    parts = []
    while start < end:
        size = end - start
        if size & (size - 1) == 0 and start % size == 0:
            parts.append((size.bit_length() - 1, start // size))
            break
        k = _split(size)
        parts.append((k.bit_length() - 1, start // k))
        start += k
    return parts


def subtree_hash(start: int, end: int, get: Getter) -> bytes:
    parts = [get(level, index) for level, index in _range_parts(start, end)]
    return root_from_peaks(parts)


def needed_for_inclusion(index: int, size: int) -> set[tuple[int, int]]:
    return {p for a, b in _inclusion_ranges(index, size) for p in _range_parts(a, b)}


def needed_for_consistency(old: int, new: int) -> set[tuple[int, int]]:
    return {p for a, b in _consistency_ranges(old, new) for p in _range_parts(a, b)}


def root(size: int, get: Getter) -> bytes:
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, get)


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """PATH(m, D[0:n]) of RFC 6962 2.1.1, as the ranges whose MTHs it lists (leaf to root)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    out: list[tuple[int, int]] = []
    start, end, m = 0, size, index
    stack = []
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            stack.append((start + k, end))
            end = start + k
        else:
            stack.append((start, start + k))
            start, m = start + k, m - k
    out = list(reversed(stack))
    return out


def inclusion_proof(index: int, size: int, get: Getter) -> list[bytes]:
    return [subtree_hash(a, b, get) for a, b in _inclusion_ranges(index, size)]


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """PROOF(m, D[0:n]) of RFC 6962 2.1.2 (SUBPROOF with b = true), as ranges."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from {old} to {new}")
    if old == new:
        return []

    def sub(m: int, start: int, end: int, complete: bool) -> list[tuple[int, int]]:
        n = end - start
        if m == n:
            return [] if complete else [(start, end)]
        k = _split(n)
        if m <= k:
            return [*sub(m, start, start + k, complete), (start + k, end)]
        return [*sub(m - k, start + k, end, False), (start, start + k)]

    return sub(old, 0, new, True)


def consistency_proof(old: int, new: int, get: Getter) -> list[bytes]:
    return [subtree_hash(a, b, get) for a, b in _consistency_ranges(old, new)]
