"""Signed HTTP POSTs: the one signature scheme of every webhook the portal sends (to agents,
to paging tools and other notification receivers).

    X-HITL-Signature: t=<unix seconds>,v1=<hex hmac-sha256(secret, "<t>.<raw body>")>

Receivers verify it with `hitl_client.verify_webhook` (stdlib only, ±5 min window)."""

from __future__ import annotations

import hashlib
import hmac
import time

from core import net

SIGNATURE_HEADER = "X-HITL-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post_json(
    url: str, body: bytes, *, headers: dict[str, str], timeout: float, secret: str = ""
) -> tuple[int, str]:
    """One attempt: (status code, error text; "" when the receiver answered 2xx). Signed
    when `secret` is given. Sent through `core.net.post`: to a public address checked now
    (raises UnsafeURL otherwise), redirects not followed, the answer read bounded."""
    headers = {"Content-Type": "application/json", **headers}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    reply = net.post(url, body, headers=headers, timeout=timeout)
    code = reply.status
    return code, "" if 200 <= code < 300 else f"HTTP {code}: {reply.text}"
