"""Coalescing: a mailbox is not sent more new requests than a person can read. Once it has
been sent HITL_NOTIFY_COALESCE_PER_MINUTE of them (requested, next stage, escalated) within a
minute, the further ones are not sent on their own: their deliveries are written `coalesced`,
naming one summary delivery ("N new requests in your queue", with the link to the queue) that
is due when its minute is over, and that the sweep then enqueues like any due delivery. While
a summary is open, every new request to the mailbox joins it. Nothing is lost: the coalesced
rows are kept, listed in the admin, and the summary counts them when it is sent.

Runs inside the fan-out's transaction, before its deliveries are inserted: one query for the
mailboxes' last minute, and only when a mailbox is over the limit, a lock per such mailbox and
one query for its open summary. On PostgreSQL the lock (a transaction advisory lock) makes
two fan-outs at once agree on one summary; their counts are read before it, so two fan-outs
at the very same moment may send one or two over the limit (SQLite runs them one at a time)."""

from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.db import connections
from django.db.models import Count, Q

from notifications.models import ChannelKind, Delivery, Event
from notifications.outbox import OUTBOX, new_delivery

QUEUE_EVENTS = (Event.REQUESTED, Event.STAGE, Event.ESCALATED)
WINDOW = dt.timedelta(minutes=1)


def coalesce(deliveries: list[Delivery], now: dt.datetime) -> list[Delivery]:
    """Mark the deliveries over a mailbox's limit `coalesced` (into a summary, created here if
    none is open). Returns the summaries created (already inserted: the caller inserts the
    deliveries, which refer to them)."""
    limit = settings.HITL_NOTIFY_COALESCE_PER_MINUTE
    candidates = [
        d
        for d in deliveries
        if limit and d.channel == ChannelKind.EMAIL and d.event in QUEUE_EVENTS and d.address
    ]
    if not candidates:
        return []
    since = now - WINDOW
    recent = (
        Delivery.objects.filter(
            channel=ChannelKind.EMAIL,
            address__in={d.address for d in candidates},
            created_at__gt=since,
        )
        .values("address")
        .annotate(
            sent=Count(
                "pk", filter=Q(event__in=QUEUE_EVENTS) & ~Q(status=Delivery.Status.COALESCED)
            ),
            open=Count("pk", filter=_open(now)),
        )
    )
    sent = {r["address"]: r["sent"] for r in recent}
    open_ = {r["address"] for r in recent if r["open"]}
    wanted: dict[str, int] = {}
    for d in candidates:
        wanted[d.address] = wanted.get(d.address, 0) + 1
    over = sorted(a for a, n in wanted.items() if a in open_ or sent.get(a, 0) + n > limit)
    if not over:
        return []
    _lock(over)
    summaries = {
        s.address: s
        for s in Delivery.objects.filter(
            _open(now), channel=ChannelKind.EMAIL, address__in=over, created_at__gt=since
        ).order_by("created_at")
    }
    created = []
    for d in candidates:
        if d.address not in over:
            continue
        summary = summaries.get(d.address)
        if summary is None and sent.get(d.address, 0) < limit:
            sent[d.address] = sent.get(d.address, 0) + 1
            continue
        if summary is None:
            summary = summaries[d.address] = _summary(d, now)
            created.append(summary)
        d.status, d.coalesced_into = Delivery.Status.COALESCED, summary
    Delivery.objects.bulk_create(created)
    return created


def _open(now: dt.datetime) -> Q:
    """A summary still gathering: its minute is not over and no attempt has started."""
    return Q(event=Event.COALESCED, status=Delivery.Status.PENDING, attempts=0) & Q(
        next_attempt_at__gt=now
    )


def _summary(first: Delivery, now: dt.datetime) -> Delivery:
    closes = now + WINDOW
    return new_delivery(
        None,
        ChannelKind.EMAIL,
        f"coalesced:{first.address}:{now.isoformat()}",
        event=Event.COALESCED,
        recipient_id=first.recipient_id,
        address=first.address,
        # Due when the window closes; nothing enqueued: the sweep sends it then.
        next_attempt_at=closes,
        enqueued_at=None,
        give_up_at=closes + dt.timedelta(hours=OUTBOX.retry_hours()),
        created_at=now,
    )


def _lock(addresses: list[str]) -> None:
    connection = connections[Delivery.objects.db]
    if connection.vendor != "postgresql":
        return  # SQLite: the fan-out's IMMEDIATE transaction holds the write lock already
    keys = [
        int.from_bytes(
            hashlib.sha256(f"hitl-coalesce:{a}".encode()).digest()[:8], "big", signed=True
        )
        for a in addresses
    ]
    with connection.cursor() as cursor:
        for key in keys:  # sorted by address: two fan-outs take them in the same order
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
