"""Waking long-poll waiters the moment a decision commits, without a thread per waiter.

One `WaitHub` per event loop (one per uvicorn worker process) keeps a dict of
checkpoint id → futures. What wakes them:

- PostgreSQL: ONE listening connection per process (`LISTEN hitl_checkpoint_resolved`). The
  resolving transaction issues `NOTIFY` (the receiver of `checkpoint_resolved` below), which
  PostgreSQL delivers at commit, so a woken waiter always reads the committed decision.
  After (re)connecting, the hub re-checks every waited id once, covering notifications sent
  while it was down.
- SQLite (or while the listener is down): ONE poller per process checks all waited ids in a
  single query every `WAIT_POLL_INTERVAL` seconds.

Database work for waiters runs on a small dedicated thread pool (`WAIT_DB_THREADS`), so
the number of threads and database connections stays fixed however many requests wait.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection, connections
from django.dispatch import receiver

from approvals.models import Checkpoint
from approvals.signals import checkpoint_resolved
from core.ledger.listen import conninfo

log = logging.getLogger(__name__)

CHANNEL = "hitl_checkpoint_resolved"
T = TypeVar("T")
# Seconds between the SQLite poller's queries (one per process for all waiters): about the
# latency a waiter sees on SQLite, for one cheap query per tick.
WAIT_POLL_INTERVAL = 0.1
# Threads per process doing the waiters' database reads: a fixed number of connections
# however many requests wait.
WAIT_DB_THREADS = 4

_pool: ThreadPoolExecutor | None = None


def db_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WAIT_DB_THREADS, thread_name_prefix="hitl-wait-db")
    return _pool


def _db_job(fn: Callable[..., T], args: tuple) -> T:
    # A pool thread keeps its own connection between jobs (bounded: one per thread); a broken
    # one (database restarted, idle timeout) is dropped and the job retried once.
    try:
        return fn(*args)
    except (OperationalError, InterfaceError):
        connection.close()
        return fn(*args)


async def run_db(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(db_pool(), _db_job, fn, args)


def resolved_among(ids: list[str]) -> list[str]:
    found: list[str] = []
    for start in range(0, len(ids), 500):
        found += [
            str(pk)
            for pk in Checkpoint.with_drills.filter(pk__in=ids[start : start + 500])
            .exclude(status=Checkpoint.Status.PENDING)
            .values_list("pk", flat=True)
        ]
    return found


@receiver(checkpoint_resolved, dispatch_uid="api.wake_waiters_on_resolved")
def notify_resolved(sender, checkpoint: Checkpoint, **kwargs) -> None:
    """Inside the resolving transaction: PostgreSQL delivers it at commit (or never, on
    rollback). A no-op on SQLite, where waiters poll."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(checkpoint.pk)])


class WaitHub:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future]] = defaultdict(set)
        self._task: asyncio.Task | None = None
        self.listening = False  # PostgreSQL listener connected

    @property
    def waiting(self) -> int:
        return sum(len(s) for s in self._waiters.values())

    def register(self, checkpoint_id: str) -> asyncio.Future:
        self._ensure_running()
        fut = asyncio.get_running_loop().create_future()
        self._waiters[checkpoint_id].add(fut)
        return fut

    def unregister(self, checkpoint_id: str, fut: asyncio.Future) -> None:
        waiters = self._waiters.get(checkpoint_id)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[checkpoint_id]

    def wake(self, ids: Iterable[str]) -> None:
        for checkpoint_id in ids:
            for fut in self._waiters.pop(checkpoint_id, ()):
                if not fut.done():
                    fut.set_result(None)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hitl-wait-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        while True:
            try:
                if connections["default"].vendor == "postgresql":
                    await self._listen()
                else:
                    await self._poll(forever=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("long-poll hub: listener failed; polling until it reconnects")
                self.listening = False
                # Poll for a while (waiters keep being served), then try to listen again.
                try:
                    await asyncio.wait_for(self._poll(forever=True), timeout=5)
                except TimeoutError:
                    pass

    async def _poll(self, forever: bool) -> None:
        interval = WAIT_POLL_INTERVAL
        while True:
            if self._waiters:
                await self._recheck()
            if not forever:
                return
            await asyncio.sleep(interval)

    async def _recheck(self) -> None:
        ids = list(self._waiters)
        if ids:
            self.wake(await run_db(resolved_among, ids))

    async def _listen(self) -> None:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(conninfo("hitl-longpoll"), autocommit=True)
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.listening = True
            await self._recheck()  # anything resolved while we were not listening
            async for note in conn.notifies():
                self.wake([note.payload])
        finally:
            self.listening = False
            await conn.close()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WaitHub] = weakref.WeakKeyDictionary()


def get_hub() -> WaitHub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = WaitHub()
    return hub


async def wait_until_resolved(
    checkpoint_id: str,
    timeout: float,
    load: Callable[[], dict],
    *,
    first: Callable[[], dict] | None = None,
) -> dict:
    """Return `load()` (run on the DB pool) as soon as the checkpoint is no longer pending,
    or after `timeout` seconds with its still-pending state. `first` (default `load`) makes
    the first read, e.g. with authentication; its exceptions propagate."""
    hub = get_hub()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    fut = hub.register(checkpoint_id)  # register before reading: no wake-up can slip between
    try:
        data = await run_db(first or load)
        while data["status"] == "pending":
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(asyncio.shield(fut), remaining)
            except TimeoutError:
                # Read once more: a missed wake-up costs at most the timeout, never the result.
                return await run_db(load)
            hub.unregister(checkpoint_id, fut)
            fut = hub.register(checkpoint_id)
            data = await run_db(load)
        return data
    finally:
        hub.unregister(checkpoint_id, fut)
