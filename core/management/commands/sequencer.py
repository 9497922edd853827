"""`manage.py sequencer`: the ledger's standing sequencer (see core.ledger.sequencer).

Run one or more (any machine): on PostgreSQL one holds the leader lock (a session advisory
lock) and sequences; the others stand by and take over within a second when it dies. The
leader is woken at commit by decisions (NOTIFY) and polls every HITL_LEDGER_POLL_INTERVAL
otherwise; after each round it pushes the latest head to the witnesses that are due.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from core.ledger import sequencer, witnesses

log = logging.getLogger("core.ledger.sequencer")
STANDBY_SECONDS = 1.0


class Loop:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.leader = False
        self._listener = None

    def _lead(self) -> bool:
        if connection.vendor != "postgresql":
            return True  # SQLite: one writer at a time anyway
        if not self.leader:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [sequencer.LOCK_KEY])
                self.leader = bool(cursor.fetchone()[0])
            if self.leader:
                log.info("sequencer: leading")
        return self.leader

    def _listen(self):
        if connection.vendor != "postgresql":
            return None
        if self._listener is None or self._listener.closed:
            import psycopg

            from core.ledger.listen import conninfo

            self._listener = psycopg.connect(conninfo("hitl-sequencer"), autocommit=True)
            self._listener.execute(f"LISTEN {sequencer.WAKE_CHANNEL}")
        return self._listener

    def _wait(self, seconds: float) -> None:
        listener = self._listen()
        if listener is None:
            self.stop.wait(seconds)
            return
        for _note in listener.notifies(timeout=seconds, stop_after=1):
            pass

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

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if not self._lead():
                    self.stop.wait(STANDBY_SECONDS)
                    continue
                self.run_once()
                self._wait(settings.HITL_LEDGER_POLL_INTERVAL)
            except sequencer.LedgerCorrupt:
                log.exception("sequencer: the stored log does not match its signed head")
                self.stop.wait(30)
            except DatabaseError:
                log.exception("sequencer: database error; reconnecting")
                self.leader = False
                connection.close()
                if self._listener is not None:
                    self._listener.close()
                self.stop.wait(1)
        if self._listener is not None:
            self._listener.close()


class Command(BaseCommand):
    help = "Run the ledger's sequencer (one leads; others stand by)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="sequence what is pending, then exit"
        )

    def handle(self, *args, **opts):
        loop = Loop()
        if opts["once"]:
            done = loop.run_once() if loop._lead() else 0
            self.stdout.write(f"sequenced {done} events")
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: loop.stop.set())
        started = time.monotonic()
        log.info("sequencer: started")
        loop.run()
        log.info("sequencer: stopped after %.0f s", time.monotonic() - started)
