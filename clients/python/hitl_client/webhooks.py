"""Verifying the portal's webhook signatures in a receiver (stdlib only)."""

from __future__ import annotations

import hashlib
import hmac
import string
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-HITL-Signature"
DEFAULT_TOLERANCE = 300  # seconds; older signatures are refused (replayed requests)


class WebhookVerificationError(ValueError):
    pass


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Check `X-HITL-Signature: t=<unix>,v1=<hex hmac-sha256(secret, "t.body")>` over the raw
    body. Returns True, or raises WebhookVerificationError saying what is wrong. Pass the body
    exactly as received (bytes), before any JSON parsing."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    # Strict ASCII parsing: str.isdigit() accepts "²" (int() then raises ValueError), and
    # hmac.compare_digest raises TypeError on non-ASCII str; both must be refused here.
    if timestamp is None or not _is_ascii_digits(timestamp, max_length=15) or not signatures:
        raise WebhookVerificationError(f"malformed {SIGNATURE_HEADER} header")
    if not all(_is_hex(s) for s in signatures):
        raise WebhookVerificationError(f"malformed {SIGNATURE_HEADER} header: v1 is not hex")
    age = (time.time() if now is None else now) - int(timestamp)
    if tolerance and abs(age) > tolerance:
        raise WebhookVerificationError(f"signature timestamp is {int(age)} s off (replay?)")
    expected = sign(secret, raw, int(timestamp)).split("v1=", 1)[1].encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in signatures):
        raise WebhookVerificationError("signature does not match")
    return True


def _is_ascii_digits(value: str, max_length: int) -> bool:
    return 0 < len(value) <= max_length and value.isascii() and value.isdigit()


def _is_hex(value: str) -> bool:
    return bool(value) and all(c in string.hexdigits for c in value)
