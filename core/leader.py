"""One shape for every standing leader loop (the ledger's sequencer, the deadline timer).

Any number of processes run the same loop; exactly one leads at a time and the others stand
by, taking over when it dies. A loop is a `Leader` subclass with a `round()` that does the
work and returns how long to sleep before the next one; how it is elected is its `leadership`:

- `Lease`: a `core.leases` row (SQLite and PostgreSQL alike), renewed when half of it is used
  up; a dead leader is replaced once its lease runs out;
- `AdvisoryLock`: a PostgreSQL session advisory lock, held as long as the connection lives
  (the sequencer's: its batches take the same key, so the standing leader also keeps
  request-side batches out); SQLite leads always (one writer at a time anyway).

Between rounds the leader sleeps for the round's interval, or until a NOTIFY on `wake_channel`
(PostgreSQL; e.g. a decision's commit) wakes it. A database error drops leadership and the
connection (both are taken again next round); `failed()` decides about any other error.
`manage.py portald` runs the loops, each in a thread of its own (hitlportal.management)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.db import DatabaseError, close_old_connections, connection

from core import leases

log = logging.getLogger(__name__)


def holder_name() -> str:
    """Who holds a lease: host, process and thread (a test can find the process in it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Lease:
    """Leadership through the `core.leases` row `name`, held for `seconds` at a time."""

    def __init__(self, name: str, holder: str, seconds: float):
        self.name, self.holder, self.seconds = name, holder, seconds
        self.standby = seconds / 2  # a follower looks again in half a lease
        self._held_until = 0.0  # monotonic time until which our lease surely holds

    def lead(self) -> bool:
        """Hold the lease, renewing it when half of it is used up (one write per half lease,
        not one per round)."""
        now = time.monotonic()
        if now < self._held_until - self.seconds / 2:
            return True
        if leases.hold(self.name, self.holder, self.seconds):
            self._held_until = now + self.seconds
            return True
        self._held_until = 0.0
        return False

    def lost(self) -> None:
        self._held_until = 0.0

    def release(self) -> None:
        leases.release(self.name, self.holder)


class AdvisoryLock:
    """Leadership through the PostgreSQL session advisory lock `key`; it dies with the
    connection, so a follower takes over within `standby` seconds. SQLite: always leads."""

    standby = 1.0

    def __init__(self, key: int, name: str):
        self.key, self.name = key, name
        self.held = False

    def lead(self) -> bool:
        if connection.vendor != "postgresql":
            return True
        if not self.held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
                self.held = bool(cursor.fetchone()[0])
            if self.held:
                log.info("%s: leading", self.name)
        return self.held

    def lost(self) -> None:
        self.held = False

    def release(self) -> None:
        if self.held:
            self.held = False
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])


class Leader:
    """A standing loop; subclasses set `name` and implement `round()`."""

    name = "leader"
    wake_channel: str | None = None  # PostgreSQL NOTIFY channel that ends a sleep early

    def __init__(self, leadership: Lease | AdvisoryLock):
        self.leadership = leadership
        self.stop = threading.Event()
        self._listener = None

    def round(self) -> float:
        """Do one round of work (as the leader); return the seconds to sleep."""
        raise NotImplementedError

    def failed(self, error: Exception) -> float | None:
        """An error other than a database error: seconds to wait before the next round, or
        None to let it end the loop."""
        return None

    def tick(self) -> float:
        """One round if leading; returns how long to sleep (a follower: `standby`)."""
        if not self.leadership.lead():
            return self.leadership.standby
        return self.round()

    def _listen(self):
        if self.wake_channel is None or connection.vendor != "postgresql":
            return None
        if self._listener is None or self._listener.closed:
            import psycopg

            from core.ledger.listen import conninfo

            self._listener = psycopg.connect(conninfo(f"hitl-{self.name}"), autocommit=True)
            self._listener.execute(f"LISTEN {self.wake_channel}")
        return self._listener

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or until stopped or (a leader with a wake channel) notified."""
        listener = self._listen()
        if listener is None:
            self.stop.wait(seconds)
            return
        for _note in listener.notifies(timeout=seconds, stop_after=1):
            pass

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def run(self) -> None:
        log.info("%s: started", self.name)
        try:
            while not self.stop.is_set():
                try:
                    if not self.leadership.lead():
                        self.stop.wait(self.leadership.standby)
                        continue
                    wait = self.round()
                except DatabaseError:
                    log.exception("%s: database error; reconnecting", self.name)
                    self.leadership.lost()
                    connection.close()  # reopened next round
                    self._close_listener()
                    wait = 1.0
                except Exception as error:
                    wait = self.failed(error)
                    if wait is None:
                        raise
                if wait and not self.stop.is_set():
                    self.sleep(wait)
        finally:
            self._close_listener()
            try:
                self.leadership.release()
            except DatabaseError:  # a lease runs out, a lock dies with its connection
                log.warning("%s: could not give up leadership cleanly", self.name)
            finally:
                close_old_connections()
            log.info("%s: stopped", self.name)
