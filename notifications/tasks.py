"""django-q2 tasks of notifications: ids in, idempotent (a notice already fanned out, a
delivered, failed, not-yet-due or in-flight delivery is left alone)."""

from __future__ import annotations

from notifications.events import fan_out as _fan_out
from notifications.outbox import OUTBOX
from notifications.outbox import deliver as _deliver


def fan_out(notice_ids: list) -> str:
    """The recipients and deliveries of the notices a transaction recorded; their sends
    follow here once they are committed (the first batch, the rest in `deliver_many` tasks)."""
    return f"fanned out {_fan_out(notice_ids, send_now=True)} of {len(notice_ids)} notice(s)"


def deliver_many(delivery_ids: list) -> str:
    """A batch of deliveries, over one SMTP connection."""
    outcomes = OUTBOX.deliver_many(delivery_ids)
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "none"


def deliver(delivery_id: str) -> str:
    """One delivery (a re-send from the admin; tasks enqueued by an earlier version)."""
    return _deliver(delivery_id)
