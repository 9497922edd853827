"""django-q2 tasks of notifications: ids in, idempotent (a notice already fanned out, a
delivered, failed, not-yet-due or in-flight delivery is left alone)."""

from __future__ import annotations

from notifications.events import fan_out as _fan_out
from notifications.outbox import deliver as _deliver


def fan_out(notice_ids: list) -> str:
    """The recipients and deliveries of the notices a transaction recorded."""
    return f"fanned out {_fan_out(notice_ids)} of {len(notice_ids)} notice(s)"


def deliver(delivery_id: str) -> str:
    return _deliver(delivery_id)
