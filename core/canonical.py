"""Canonical JSON: one text for one value, so that hashes over it are stable (the audit
chain, action fingerprints, idempotency fingerprints)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def normalize(data: Any) -> Any:
    """Round-trip through JSON, so that what is hashed is exactly what a JSONField gives back."""
    return json.loads(canonical_json(data))


def action_sha256(action: dict | None) -> str:
    """A stable fingerprint of an action: what was approved is provably what runs."""
    return hashlib.sha256(canonical_json(action or {}).encode()).hexdigest()
