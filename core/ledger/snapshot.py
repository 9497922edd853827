"""One consistent view of the log for everything that checks it.

The sequencer commits an entry's `seq`, its tree nodes and the head that covers it in one
transaction. A reader that takes the heads from one moment and the entries from a later one
sees entries under a head it never read, and calls them "written outside the sequencer": a
tampering report on every busy portal (issue 18). So every verifier reads inside
`read_snapshot()`: PostgreSQL, a REPEATABLE READ READ ONLY transaction (one snapshot for all
its statements); SQLite, a deferred read transaction, which in WAL mode sees the database as
of its first read while writers go on (an IMMEDIATE one would hold the write lock and stall
the portal for as long as the verification runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def read_snapshot() -> Iterator[None]:
    """Reads inside see the database at one moment. Inside a transaction already (a caller's
    `atomic`), that transaction's view applies: SQLite's is a snapshot; on PostgreSQL the
    caller chose its isolation with its first statement."""
    if connection.in_atomic_block:
        yield
        return
    connection.ensure_connection()  # connecting resets the SQLite transaction mode
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
        return
    if connection.vendor != "sqlite":
        with transaction.atomic():
            yield
        return
    mode = connection.transaction_mode
    connection.transaction_mode = "DEFERRED"  # BEGIN DEFERRED: a reader, no write lock
    try:
        with transaction.atomic():
            connection.transaction_mode = mode  # only the BEGIN above is a reader's
            yield
    finally:
        connection.transaction_mode = mode
