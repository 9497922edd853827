"""Enqueueing django-q2 tasks. Payloads are ids only (they are pickled and signed with
SECRET_KEY); every task is idempotent because the broker may deliver twice (ORM) or lose a
task (Redis) and the reconcile sweep re-enqueues from the rows' state."""

from __future__ import annotations

import logging

from django_q.tasks import async_task

log = logging.getLogger(__name__)


def enqueue(func: str, *args, reason: str = "", **kwargs) -> str | None:
    try:
        return async_task(func, *args, **kwargs)
    except Exception:
        # The rows remember the follow-up is owed; the reconcile sweep will enqueue it again.
        log.exception("enqueue of %s%r failed (%s); reconcile will retry", func, args, reason)
        return None
