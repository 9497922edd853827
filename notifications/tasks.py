"""django-q2 tasks of notifications: ids in, idempotent (a delivered, failed, not-yet-due or
in-flight delivery is left alone)."""

from __future__ import annotations

from notifications.outbox import deliver as _deliver


def deliver(delivery_id: str) -> str:
    return _deliver(delivery_id)
