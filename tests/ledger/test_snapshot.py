"""`read_snapshot`, what every verifier reads in: one moment of the database for all its
statements, and no lock that would stall writers while a long verification runs (both
databases)."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from audit.models import AuditEvent
from core.ledger.snapshot import read_snapshot
from tests.ledger.test_sequencer import record

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_snapshot_sees_one_moment_while_a_writer_commits_beside_it(agent):
    record(agent, 3)
    done = threading.Event()

    def write() -> None:
        try:
            record(agent, 5)  # another connection: must not wait for the reader
            done.set()
        finally:
            connections.close_all()

    with read_snapshot():
        seen = AuditEvent.objects.count()
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=30)
        assert done.is_set(), "the writer waited for the reader"
        assert AuditEvent.objects.count() == seen == 3  # still the moment of the first read
    assert AuditEvent.objects.count() == 8
