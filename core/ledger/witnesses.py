"""Witnesses: copies of the signed heads outside the database, so that a rewrite of the
database (and of its heads) is caught by comparing with them (`hitl verify --trusted-head`,
`manage.py verify_audit --trusted-head`).

`HITL_LEDGER_WITNESSES` lists where the latest head goes, at most every
`HITL_LEDGER_WITNESS_INTERVAL` seconds (email: `HITL_LEDGER_WITNESS_EMAIL_INTERVAL`):

    file:///mnt/audit/hitl-heads.jsonl   one JSON head per line, appended (another volume)
    https://witness.example.com/hitl      POST of the head as JSON; with
                                          HITL_LEDGER_WITNESS_SECRET also X-HITL-Signature
                                          (the webhooks' scheme); any 2xx is an acknowledgement;
                                          public addresses only (`core.net`)
    mailto:auditors@example.com           an email with the head (Django's email settings)

`publish_due()` owes the latest head to every witness whose interval has passed since it was
last owed one: a `WitnessDelivery` row of the generic outbox (`core.outbox`), sent by a
django-q2 task after commit, retried with backoff when the push fails and given up after a
day. The owing is claimed on the witness's `WitnessState` (compare and set): the sequencer
and the minute sweep both publish, and a witness is owed each head once. `publish_due()`
also enqueues the deliveries whose retry came due or whose task was lost (the outbox's
`enqueue_due`).

Witnesses always get the latest head: one that missed some heads lost nothing, since a
consistency proof links any two. So a delivery still pending when a later head is owed to the
same witness is superseded instead of sent (unless an attempt is in flight, which then ends
it). Each attempt's outcome is kept on the `WitnessState` (what it last got, the last error:
admin → Core). The sequencer calls `publish_due()` after its batches, and the minute sweep
after sequencing what is pending (so heads reach the witnesses with no sequencer running).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from core.ledger import heads
from core.models import TreeHead, WitnessDelivery, WitnessState
from core.outbox import Outbox
from core.webhooks import post_json

HTTP_TIMEOUT = 10
# Finished deliveries (a row per head and interval) are deleted this long after they were
# owed, when the witness is next owed a head; its `WitnessState` keeps what it last got.
KEEP_FINISHED = dt.timedelta(days=7)
_FINISHED = [
    WitnessDelivery.Status.DELIVERED,
    WitnessDelivery.Status.FAILED,
    WitnessDelivery.Status.SUPERSEDED,
]


def _interval(url: str) -> int:
    if url.startswith("mailto:"):
        return settings.HITL_LEDGER_WITNESS_EMAIL_INTERVAL
    return settings.HITL_LEDGER_WITNESS_INTERVAL


def _push(url: str, head: dict) -> tuple[int | None, str]:
    """One push of `head` to `url`: (HTTP status or None, error text; "" when it arrived)."""
    body = json.dumps(head, separators=(",", ":"), sort_keys=True)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(body + "\n")
            fh.flush()
        return None, ""
    if parsed.scheme in ("http", "https"):
        # Signed like every webhook (`core.webhooks`), sent to a checked public address.
        return post_json(
            url,
            body.encode(),
            headers={"X-HITL-Event": "ledger.head"},
            timeout=HTTP_TIMEOUT,
            secret=settings.HITL_LEDGER_WITNESS_SECRET,
        )
    if parsed.scheme == "mailto":
        send_mail(
            f"HITL ledger head {head['tree_size']} ({head['origin']})",
            "The latest signed head of the HITL Portal's audit ledger. Keep this mail: with it, "
            "`hitl verify --trusted-head` or `manage.py verify_audit --trusted-head` proves "
            "that no logged event was changed or removed since.\n\n" + body + "\n",
            None,
            [parsed.path],
        )
        return None, ""
    raise ValueError(f"unsupported witness {url!r}")


def _supersede_older(url: str) -> None:
    """Pending deliveries to `url` of heads older than the latest one owed to it, not in
    flight: superseded (the witness gets the later head instead)."""
    latest = (
        WitnessDelivery.objects.filter(url=url)
        .exclude(status=WitnessDelivery.Status.SUPERSEDED)
        .aggregate(latest=Max("tree_size"))["latest"]
    )
    if latest is None:
        return
    now = timezone.now()
    WitnessDelivery.objects.filter(
        url=url, status=WitnessDelivery.Status.PENDING, tree_size__lt=latest
    ).filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now)).update(
        status=WitnessDelivery.Status.SUPERSEDED, enqueued_at=None, locked_until=None
    )


class WitnessOutbox(Outbox):
    model = WitnessDelivery
    task = "core.ledger.witnesses.deliver"
    name = "witness"

    def lease_seconds(self) -> int:
        # Longer than a push can take: a POST's timeout, a mail's (EMAIL_TIMEOUT per step).
        return max(HTTP_TIMEOUT, settings.EMAIL_TIMEOUT or 0) * 3 + 5

    def send(self, row: WitnessDelivery) -> tuple[int | None, str]:
        if row.url not in settings.HITL_LEDGER_WITNESSES:
            return None, "no longer in HITL_LEDGER_WITNESSES: not sent"
        return _push(row.url, row.head)

    def attempted(self, row: WitnessDelivery, outcome: str, error: str) -> None:
        fields: dict = {"last_attempt_at": row.last_attempt_at, "last_error": error[:1000]}
        if outcome == "delivered":
            fields.update(last_tree_size=row.tree_size, last_pushed_at=timezone.now())
        # An attempt at an older head (one in flight when a later head was owed) does not
        # overwrite what the witness got since.
        WitnessState.objects.filter(url=row.url, last_tree_size__lte=row.tree_size).update(**fields)
        if outcome == "retry":
            _supersede_older(row.url)  # this one, if a later head was owed meanwhile


OUTBOX = WitnessOutbox()


def deliver(delivery_id) -> str:
    """One attempt (the `core.ledger.witnesses.deliver` task)."""
    return OUTBOX.deliver(delivery_id)


def _owe(state: WitnessState, head: TreeHead, now: dt.datetime) -> bool:
    """Owe `head` to the witness, unless another publisher claimed it since `state` was
    read; the delivery is enqueued on commit."""
    with transaction.atomic():
        unclaimed = {"owed_at": state.owed_at} if state.owed_at else {"owed_at__isnull": True}
        claimed = WitnessState.objects.filter(pk=state.pk, **unclaimed).update(
            owed_at=now, owed_tree_size=head.tree_size
        )
        if not claimed:
            return False  # another publisher got there first
        OUTBOX.owe(
            url=state.url,
            tree_size=head.tree_size,
            defaults={"head": heads.as_json(head)},
            reason="ledger head",
        )
        _supersede_older(state.url)
        WitnessDelivery.objects.filter(
            url=state.url, status__in=_FINISHED, created_at__lt=now - KEEP_FINISHED
        ).delete()
    return True


def publish_due(now: dt.datetime | None = None) -> int:
    """Owe the latest head to every witness whose interval has passed, and enqueue the
    deliveries whose retry came due or whose task was lost; returns how many deliveries
    were owed or enqueued. `now` moves the intervals' clock (tests); the outbox keeps its own
    (its claim reads the real time)."""
    urls = settings.HITL_LEDGER_WITNESSES
    if not urls:
        return 0
    now = now or timezone.now()
    owed = 0
    head = TreeHead.objects.order_by("-tree_size").first()
    if head is not None:
        states = {state.url: state for state in WitnessState.objects.filter(url__in=urls)}
        for url in urls:
            state = states.get(url) or WitnessState.objects.get_or_create(url=url)[0]
            if state.owed_tree_size >= head.tree_size:
                continue
            last = state.owed_at
            if last and (now - last).total_seconds() < _interval(url):
                continue
            owed += _owe(state, head, now)
    return owed + OUTBOX.enqueue_due()
