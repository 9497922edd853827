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

Witnesses always get the latest head: one that missed some heads lost nothing, since a
consistency proof links any two. A failure is recorded on its `WitnessState` and retried at
the next interval. The sequencer calls `publish_due()` after its batches, and the minute
sweep after sequencing what is pending (so heads reach the witnesses with no sequencer
running).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from core.ledger import heads
from core.models import TreeHead, WitnessState
from core.webhooks import post_json

log = logging.getLogger(__name__)


def _interval(url: str) -> int:
    if url.startswith("mailto:"):
        return settings.HITL_LEDGER_WITNESS_EMAIL_INTERVAL
    return settings.HITL_LEDGER_WITNESS_INTERVAL


def _push(url: str, head: dict) -> None:
    body = json.dumps(head, separators=(",", ":"), sort_keys=True)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(body + "\n")
            fh.flush()
        return
    if parsed.scheme in ("http", "https"):
        # Signed like every webhook (`core.webhooks`), sent to a checked public address.
        _code, error = post_json(
            url,
            body.encode(),
            headers={"X-HITL-Event": "ledger.head"},
            timeout=10,
            secret=settings.HITL_LEDGER_WITNESS_SECRET,
        )
        if error:
            raise RuntimeError(error)
        return
    if parsed.scheme == "mailto":
        send_mail(
            f"HITL ledger head {head['tree_size']} ({head['origin']})",
            "The latest signed head of the HITL Portal's audit ledger. Keep this mail: with it, "
            "`hitl verify --trusted-head` or `manage.py verify_audit --trusted-head` proves "
            "that no logged event was changed or removed since.\n\n" + body + "\n",
            None,
            [parsed.path],
        )
        return
    raise ValueError(f"unsupported witness {url!r}")


def publish_due(now: dt.datetime | None = None) -> int:
    """Push the latest head to every witness whose interval has passed; returns how many
    were pushed."""
    if not settings.HITL_LEDGER_WITNESSES:
        return 0
    head = TreeHead.objects.order_by("-tree_size").first()
    if head is None:
        return 0
    now = now or timezone.now()
    pushed = 0
    for url in settings.HITL_LEDGER_WITNESSES:
        state, _ = WitnessState.objects.get_or_create(url=url)
        if state.last_tree_size >= head.tree_size:
            continue
        last = state.last_attempt_at
        if last and (now - last).total_seconds() < _interval(url):
            continue
        # Claim the attempt (compare and set): the sequencer and the minute sweep both
        # publish, and a witness should not get the same head twice from both.
        unclaimed = {"last_attempt_at": last} if last else {"last_attempt_at__isnull": True}
        if not WitnessState.objects.filter(pk=state.pk, **unclaimed).update(last_attempt_at=now):
            continue  # another publisher got there first
        try:
            _push(url, heads.as_json(head))
        except Exception as exc:
            log.warning("ledger witness %s: %s", url, exc)
            WitnessState.objects.filter(pk=state.pk).update(last_error=str(exc)[:1000])
            continue
        WitnessState.objects.filter(pk=state.pk).update(
            last_tree_size=head.tree_size, last_pushed_at=now, last_error=""
        )
        pushed += 1
    return pushed
