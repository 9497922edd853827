"""`manage.py sequencer`: the ledger's standing sequencer (see core.ledger.sequencer) alone;
`manage.py portald` runs it together with the deadline timer.

Run one or more (any machine): on PostgreSQL one holds the leader lock (a session advisory
lock) and sequences; the others stand by and take over within a second when it dies. The
leader is woken at commit by decisions (NOTIFY) and polls every POLL_INTERVAL
otherwise; after each round it pushes the latest head to the witnesses that are due.
"""

from __future__ import annotations

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from core.leader import AdvisoryLock, Leader
from core.ledger import sequencer, witnesses

log = logging.getLogger("core.ledger.sequencer")
# Seconds between rounds when nothing woke the leader: a decision wakes it at once (NOTIFY on
# PostgreSQL), so this bounds the lag of everything else, and on SQLite of everything.
POLL_INTERVAL = 0.05


class Loop(Leader):
    name = "sequencer"
    wake_channel = sequencer.WAKE_CHANNEL

    def __init__(self) -> None:
        super().__init__(AdvisoryLock(sequencer.LOCK_KEY, self.name))

    def run_once(self) -> int:
        done = 0
        while not self.stop.is_set():
            batch = sequencer.run_batch()
            if batch is None:  # lost the lock to someone (only without the session lock)
                break
            done += batch.work
            if batch.work < settings.HITL_LEDGER_BATCH:
                break
        witnesses.publish_due()
        return done

    def round(self) -> float:
        self.run_once()
        return POLL_INTERVAL

    def failed(self, error: Exception) -> float | None:
        if isinstance(error, sequencer.LedgerCorrupt):
            log.exception("sequencer: the stored log does not match its signed head")
            return 30.0
        return None


def stop_on_signals(*loops: Leader) -> None:
    """SIGINT / SIGTERM stop every loop at the end of its round."""

    def stop(*_):
        for loop in loops:
            loop.stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


class Command(BaseCommand):
    help = "Run the ledger's sequencer (one leads; others stand by)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="sequence what is pending, then exit"
        )

    def handle(self, *args, **opts):
        loop = Loop()
        if opts["once"]:
            done = loop.run_once() if loop.leadership.lead() else 0
            self.stdout.write(f"sequenced {done} events")
            return
        stop_on_signals(loop)
        started = time.monotonic()
        loop.run()
        log.info("sequencer: stopped after %.0f s", time.monotonic() - started)
