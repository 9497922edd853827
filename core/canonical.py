"""Canonical JSON: one text for one value, so that hashes over it are stable (the audit
chain, action fingerprints, idempotency fingerprints)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from core.exceptions import InvalidInput


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def normalize(data: Any) -> Any:
    """Round-trip through JSON, so that what is hashed is exactly what a JSONField gives back."""
    return json.loads(canonical_json(data))


def action_sha256(action: dict | None) -> str:
    """A stable fingerprint of an action: what was approved is provably what runs."""
    return hashlib.sha256(canonical_json(action or {}).encode()).hexdigest()


def check_storable_text(text: str) -> None:
    """Text every database can store: PostgreSQL refuses NUL characters, and no database can
    encode an unpaired surrogate (Python's json accepts both)."""
    if "\x00" in text:
        raise InvalidInput("Text may not contain NUL (\\u0000) characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("Text may not contain unpaired surrogates.") from None


def check_storable_json(value: Any, max_depth: int) -> None:
    """A JSON value every database can store: nested at most `max_depth` levels, strings and
    keys storable (`check_storable_text`), numbers finite. Raises InvalidInput. The API's
    parser and the review page's edit form both check with it."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list) and depth > max_depth:
            raise InvalidInput(f"JSON is nested deeper than {max_depth} levels.")
        if isinstance(item, dict):
            for key, child in item.items():
                check_storable_text(str(key))
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            check_storable_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"Number {item} is out of range.")
