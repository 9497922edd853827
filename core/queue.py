"""Enqueueing django-q2 tasks. Payloads are ids only (they are pickled and signed with
SECRET_KEY); every task is idempotent because the broker may deliver twice (ORM) or lose a
task (Redis) and the reconcile sweep re-enqueues from the rows' state.

`batched()` collects the enqueues made inside it (typically on-commit follow-ups of a sweep
that resolves hundreds of checkpoints) and sends them together at the end: with the ORM
broker in one database transaction instead of one connection and commit each.

`enqueue_on_commit(func, ids)` gathers, per transaction, the ids that several writers of one
transaction owe the same task, and enqueues that task once at commit with all of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

log = logging.getLogger(__name__)
_local = threading.local()


def enqueue(func: str, *args, reason: str = "", **kwargs) -> str | None:
    batch = getattr(_local, "batch", None)
    if batch is not None:
        batch.append((func, args, kwargs, reason))
        return None
    try:
        return async_task(func, *args, **kwargs)
    except Exception:
        # The rows remember the follow-up is owed; the reconcile sweep will enqueue it again.
        log.exception("enqueue of %s%r failed (%s); reconcile will retry", func, args, reason)
        return None


class _Gathered:
    """The on-commit callback of `enqueue_on_commit`: one task, with every id its transaction
    added."""

    def __init__(self, func: str, reason: str):
        self.func, self.reason, self.ids = func, reason, []
        self.sent = False

    def __call__(self) -> None:
        self.sent = True
        enqueue(self.func, self.ids, reason=self.reason)


def enqueue_on_commit(func: str, ids: list, *, reason: str = "") -> None:
    """Inside a transaction: `func(ids)` enqueued once at commit, however many times this is
    called for `func` in the transaction (each call adds its ids to the one task). Django drops
    the callback with the savepoint it was registered in; a later call then registers a new
    one. Ids added in a savepoint that was rolled back may still reach the task: tasks take
    ids of rows that may be gone. (In a test's transaction, a call joins a task still pending
    from an earlier call whose callbacks the test did not run.)"""
    connection = transaction.get_connection()
    for _sids, callback, _robust in connection.run_on_commit:
        # not one already run: tests run callbacks without ending the transaction
        if isinstance(callback, _Gathered) and callback.func == func and not callback.sent:
            callback.ids.extend(ids)
            return
    gathered = _Gathered(func, reason)
    gathered.ids.extend(ids)
    transaction.on_commit(gathered)


@contextmanager
def batched() -> Iterator[None]:
    if getattr(_local, "batch", None) is not None:
        yield  # nested: the outermost batch sends
        return
    _local.batch = []
    try:
        yield
    finally:
        items, _local.batch = _local.batch, None
        _send(items)


def _send(items: list[tuple]) -> None:
    if not items:
        return
    try:
        if Conf.SYNC or not Conf.ORM:
            for func, args, kwargs, _reason in items:
                async_task(func, *args, **kwargs)
            return
        # ORM broker: django-q2 builds and signs each task as usual; the rows are inserted
        # in one bulk INSERT instead of one connection check and INSERT each.
        broker = get_broker()
        collector = _Collector(broker.list_key or Conf.CLUSTER_NAME)
        for func, args, kwargs, _reason in items:
            async_task(func, *args, broker=collector, **kwargs)
        now = timezone.now()
        OrmQ.objects.using(Conf.ORM).bulk_create(
            [OrmQ(key=collector.list_key, payload=pack, lock=now) for pack in collector.packs],
            batch_size=500,
        )
    except Exception:
        log.exception("enqueue of %d follow-ups failed; reconcile will retry", len(items))


class _Collector:
    """Stands in for the ORM broker inside `async_task`: keeps the signed packages."""

    def __init__(self, list_key: str):
        self.list_key = list_key
        self.packs: list[str] = []

    def enqueue(self, pack: str) -> int:
        self.packs.append(pack)
        return len(self.packs)
