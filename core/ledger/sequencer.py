"""The sequencer: committed unsequenced entries → seq, leaf hash, Merkle tree, signed head.

`run_batch()` is the whole of it, in one transaction: a crash anywhere rolls back to the
last head, and the next sequencer (or the same one restarted) carries on from there. Only one
batch runs at a time: PostgreSQL `pg_try_advisory_xact_lock` (a standing leader also holds the
same key as a session lock, so the sweep's safety-net batch steps aside while it lives);
SQLite's IMMEDIATE transactions admit one writer. Entries of transactions that rolled back
were never committed, so they are never seen; `seq` is unique, so a bug can never fork it.

Order: by primary key among the entries committed when the batch reads them. An entry that
commits late (a lower id committed after a higher one) simply gets a later `seq`: the log
records the order in which entries reached it, like a certificate-transparency log.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max

from core.ledger import entry_model, heads, merkle
from core.ledger.keys import Signer, b64
from core.models import LedgerNode, TreeHead

log = logging.getLogger(__name__)

LOCK_KEY = 0x4C4447  # "LDG": shared by every process that may sequence
WAKE_CHANNEL = "hitl_ledger"
# Seconds a reader that needs an entry's seq (a receipt, a long-poll answer, a webhook) waits
# for the standing sequencer (a hundred of its idle rounds: running out means down or far behind).
SEQ_WAIT = 5.0


class LedgerCorrupt(RuntimeError):
    """The stored tree does not match its last signed head: the sequencer refuses to extend
    it (run `manage.py verify_audit`)."""


@lru_cache(maxsize=1)
def _signer_for(key_text: str) -> Signer:
    return Signer(key_text)


def signer() -> Signer:
    return _signer_for(settings.HITL_LEDGER_SIGNING_KEY)


@dataclass
class Batch:
    sequenced: int  # entries that got their seq in this batch
    appended: int  # leaves added to the tree (sequenced ones, or migrated history)
    head: TreeHead | None

    @property
    def work(self) -> int:
        return max(self.sequenced, self.appended)


# The leader's view of the tree's right edge, so a batch does not re-read the peaks.
_peaks_cache: dict[str, object] = {}
_cache_lock = threading.Lock()


def _try_lock() -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite: the IMMEDIATE transaction is the lock
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _leaf(Entry, seq: int) -> bytes:
    value = Entry.objects.filter(seq=seq).values_list("hash", flat=True).first()
    if not value:
        raise LedgerCorrupt(f"entry #{seq} is missing from the log")
    return bytes.fromhex(value)


def node_getter(Entry):
    """A `merkle.Getter` reading stored nodes one by one (for the few peaks of a batch)."""

    def get(level: int, index: int) -> bytes:
        if level == 0:
            return _leaf(Entry, index + 1)
        value = (
            LedgerNode.objects.filter(level=level, index=index)
            .values_list("hash", flat=True)
            .first()
        )
        if value is None:
            raise LedgerCorrupt(f"tree node {level}/{index} is missing")
        return bytes.fromhex(value)

    return get


def _peaks(Entry, size: int, head: TreeHead | None) -> list[bytes]:
    with _cache_lock:
        cached = _peaks_cache.get("tree")
    if cached and head and cached[0] == size and cached[1] == head.root_hash:  # type: ignore[index]
        return list(cached[2])  # type: ignore[index]
    get = node_getter(Entry)
    peaks = [get(level, index) for level, index in merkle.peak_positions(size)]
    expected = head.root_hash if head else merkle.EMPTY_ROOT.hex()
    if merkle.root_from_peaks(peaks).hex() != expected:
        raise LedgerCorrupt(f"the stored tree of size {size} does not match its signed head")
    return peaks


def _set_seqs(Entry, rows: list[tuple[int, str, int]]) -> None:
    """seq and hash for many rows in one statement (PostgreSQL) or one executemany."""
    table = connection.ops.quote_name(Entry._meta.db_table)
    pk = connection.ops.quote_name(Entry._meta.pk.column)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for start in range(0, len(rows), 1000):
                chunk = rows[start : start + 1000]
                values = ", ".join(["(%s::bigint, %s, %s::bigint)"] * len(chunk))
                cursor.execute(
                    f"UPDATE {table} AS e SET seq = v.seq, hash = v.hash "
                    f"FROM (VALUES {values}) AS v(seq, hash, id) WHERE e.{pk} = v.id",
                    [x for row in chunk for x in row],
                )
        else:
            cursor.executemany(f"UPDATE {table} SET seq = %s, hash = %s WHERE {pk} = %s", rows)


def sign_head(size: int, root: bytes) -> TreeHead:
    key = signer()
    timestamp = int(time.time() * 1000)
    root_hex = root.hex()
    name = heads.origin()
    signature = key.sign(heads.message(name, size, root_hex, timestamp))
    return TreeHead.objects.create(
        origin=name,
        tree_size=size,
        root_hash=root_hex,
        timestamp=timestamp,
        key_id=key.key_id,
        signature=b64(signature),
    )


def _work_waiting(Entry) -> bool:
    """Anything to sequence, or sequenced history that the tree does not hold yet (migrated
    from the old chain)? One statement of index lookups, no transaction."""
    q = connection.ops.quote_name
    entries, heads_table = q(Entry._meta.db_table), q(TreeHead._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {entries} WHERE seq IS NULL) "
            f"OR COALESCE((SELECT MAX(seq) FROM {entries}), 0) "
            f"> COALESCE((SELECT MAX(tree_size) FROM {heads_table}), 0)"
        )
        return bool(cursor.fetchone()[0])


def run_batch(limit: int | None = None) -> Batch | None:
    """Sequence up to `limit` entries (or append up to `limit` already-sequenced ones: the
    migrated history) and sign the new head. None if another sequencer holds the lock."""
    Entry = entry_model()
    limit = limit or settings.HITL_LEDGER_BATCH
    if not connection.in_atomic_block and not _work_waiting(Entry):
        return Batch(0, 0, None)  # the idle poll: one indexed query, no transaction
    with transaction.atomic():
        if not _try_lock():
            return None
        head = TreeHead.objects.order_by("-tree_size").first()
        size = head.tree_size if head else 0
        last_seq = Entry.objects.aggregate(m=Max("seq"))["m"] or 0
        sequenced = 0
        if last_seq > size:
            # Sequenced but not in the tree yet: the history that existed before the ledger.
            pairs = list(
                Entry.objects.filter(seq__gt=size)
                .order_by("seq")
                .values_list("seq", "hash")[:limit]
            )
            for offset, (seq, value) in enumerate(pairs):
                if seq != size + 1 + offset or not value:
                    raise LedgerCorrupt(f"entry #{size + 1 + offset} is missing or unhashed")
            leaves = [bytes.fromhex(value) for _seq, value in pairs]
        else:
            pending = list(Entry.objects.filter(seq__isnull=True).order_by("pk")[:limit])
            if not pending:
                return Batch(0, 0, head)
            leaves, updates = [], []
            for seq, row in enumerate(pending, start=last_seq + 1):
                row.seq = seq
                leaf = merkle.leaf_hash(row.ledger_entry())
                row.hash = leaf.hex()
                leaves.append(leaf)
                updates.append((seq, row.hash, row.pk))
            _set_seqs(Entry, updates)
            sequenced = len(pending)
        tree = merkle.Appender(size, _peaks(Entry, size, head))
        tree.extend(leaves)
        LedgerNode.objects.bulk_create(
            [LedgerNode(level=lv, index=ix, hash=h.hex()) for lv, ix, h in tree.new_nodes],
            batch_size=1000,
        )
        new_head = sign_head(tree.size, tree.root)
        snapshot = (tree.size, new_head.root_hash, tree.peaks)

        def remember() -> None:
            with _cache_lock:
                _peaks_cache["tree"] = snapshot

        transaction.on_commit(remember)
    return Batch(sequenced, len(leaves), new_head)


def sequence_pending(max_batches: int = 1000) -> int:
    """Batches until nothing is left (or another sequencer holds the lock); returns how many
    entries were sequenced or appended. The sweep's safety net, sync mode and tests."""
    total = 0
    for _ in range(max_batches):
        batch = run_batch()
        if batch is None or batch.work == 0:
            break
        total += batch.work
    return total


# --- waking the sequencer -------------------------------------------------------------------


def _inline() -> None:
    try:
        sequence_pending()
    except Exception:  # the sweep (or the next commit) tries again
        log.exception("inline sequencing failed")


def after_commit() -> None:
    """Called by writers inside their transaction. Sync mode (tests, HITL_Q_SYNC): sequence
    right after commit, in this process. Otherwise the standing sequencer polls."""
    if settings.HITL_LEDGER_SYNC and not any(
        func is _inline for _sids, func, _robust in connection.run_on_commit
    ):
        transaction.on_commit(_inline)


def wake() -> None:
    """Inside a transaction whose entries someone waits for (a decision: its receipt, its
    long-poll): wake the standing sequencer at commit (PostgreSQL NOTIFY, delivered at commit
    or never). Entries of other transactions are picked up by the sequencer's poll."""
    if settings.HITL_LEDGER_SYNC:
        after_commit()
    elif connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [WAKE_CHANNEL])


def ensure_sequenced(pks: list, timeout: float | None = None) -> dict:
    """pk → seq for entries that must be in the log before they are shown (a receipt carries
    its approval's seq). Outside a transaction this runs a batch itself if no standing
    sequencer holds the lock; otherwise it waits for the leader (up to `timeout`, default
    SEQ_WAIT). Entries still unsequenced then map to None."""
    Entry = entry_model()
    wanted = list(pks)
    deadline = time.monotonic() + (SEQ_WAIT if timeout is None else timeout)
    delay = 0.001
    may_sequence = settings.HITL_LEDGER_SYNC or not connection.in_atomic_block
    while True:
        seqs = dict(Entry.objects.filter(pk__in=wanted).values_list("pk", "seq"))
        if all(seqs.get(pk) is not None for pk in wanted):
            return seqs
        if may_sequence:
            batch = run_batch()
            if batch is not None and batch.work:
                continue
        if time.monotonic() >= deadline:
            return {pk: seqs.get(pk) for pk in wanted}
        time.sleep(delay)
        delay = min(delay * 2, 0.005)
