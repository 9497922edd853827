"""Notification deliveries on the generic outbox (`core.outbox`): the mechanics are core's;
this says how one is sent (its channel's transport) and what is audited (give-ups and
re-sends, not every message: the audit trail records decisions, not mail)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from audit import events as audit
from audit.events import Actor, AuditVerb
from core.outbox import Outbox
from notifications.models import Delivery, Notice
from notifications.transports import Batch
from notifications.transports import send as transport_send


def new_delivery(notice: Notice | None, channel: str, target: str, **fields: Any) -> Delivery:
    return Delivery(
        notice=notice,
        event=fields.pop("event", notice.event if notice else ""),
        channel=channel,
        target=target,
        **fields,
    )


class NotificationOutbox(Outbox):
    model = Delivery
    task = "notifications.tasks.deliver"
    batch_task = "notifications.tasks.deliver_many"
    name = "notification"

    def lease_seconds(self) -> int:
        return settings.HITL_NOTIFY_TIMEOUT * 3 + 5

    def retry_hours(self) -> int:
        return settings.HITL_NOTIFY_RETRY_HOURS

    def load(self, pk) -> Delivery:
        return Delivery.objects.select_related("notice", "route", "recipient").get(pk=pk)

    def rows(self):
        return Delivery.objects.select_related("notice", "route", "recipient")

    @contextmanager
    def session(self) -> Iterator[Batch]:
        """A batch's emails share one SMTP connection, its notices' messages are built once."""
        batch = Batch()
        try:
            yield batch
        finally:
            batch.close()

    def send(self, row: Delivery) -> tuple[int | None, str]:
        return transport_send(row)

    def send_in(self, session: Batch | None, row: Delivery) -> tuple[int | None, str]:
        return transport_send(row, session)

    def finished(self, row: Delivery, outcome: str, error: str) -> None:
        if outcome != "failed":
            return
        audit.record(
            Actor.system("notifications"),
            AuditVerb.NOTIFICATION_FAILED,
            ("notifications.delivery", str(row.pk)),
            {
                "event": row.event,
                "channel": row.channel,
                "target": row.target,
                "checkpoint": str(row.notice.checkpoint_id) if row.notice_id else None,
                "attempts": row.attempts,
                "last_error": error[:500],
            },
        )


OUTBOX = NotificationOutbox()


def deliver(delivery_id) -> str:
    return OUTBOX.deliver(delivery_id)


def resend(delivery: Delivery, actor: Actor) -> None:
    """Admin action: send again now (delivered or failed ones too), keeping the same id."""
    with audit.atomic():
        OUTBOX.resend(delivery)
        audit.record(
            actor,
            AuditVerb.NOTIFICATION_RESENT,
            ("notifications.delivery", str(delivery.pk)),
            {"event": delivery.event, "channel": delivery.channel, "target": delivery.target},
        )
