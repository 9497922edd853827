"""The bytes of an audit event's ledger leaf (format 1, frozen): no Django, no rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.canonical import canonical_json


def _timestamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def entry_v1(
    *,
    seq: int,
    at: dt.datetime,
    actor_type: str,
    actor_id: str,
    actor_label: str,
    verb: str,
    target_type: str,
    target_id: str,
    data: dict[str, Any],
) -> bytes:
    """The bytes an event's leaf hash covers (format 1, frozen: changing it would make every
    logged event fail verification). Canonical JSON, so `hitl verify` can show and re-hash it."""
    return canonical_json(
        {
            "v": 1,
            "seq": seq,
            "at": _timestamp(at),
            "actor": [actor_type, actor_id, actor_label],
            "verb": verb,
            "target": [target_type, target_id],
            "data": data,
        }
    ).encode()
