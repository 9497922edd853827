"""Signed tree heads: the one message format both sides sign and check.

    hitl-tree-head/v1\n<log origin>\n<tree size>\n<root hash, hex>\n<timestamp, ms>\n

Plain text on purpose: any language reproduces it byte for byte (the `hitl verify` CLI does,
in `hitl_client.ledger`). A head as JSON (the API, witnesses, `--trusted-head` files):
{"origin", "tree_size", "root_hash", "timestamp", "key_id", "signature"}.
"""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings

FORMAT = "hitl-tree-head/v1"


def message(origin: str, tree_size: int, root_hash: str, timestamp: int) -> bytes:
    return f"{FORMAT}\n{origin}\n{tree_size}\n{root_hash}\n{timestamp}\n".encode()


def origin() -> str:
    return settings.HITL_LEDGER_ORIGIN


def as_json(head) -> dict[str, Any]:
    return {
        "origin": head.origin,
        "tree_size": head.tree_size,
        "root_hash": head.root_hash,
        "timestamp": head.timestamp,
        "key_id": head.key_id,
        "signature": head.signature,
    }


def check(data: dict[str, Any], public_keys: dict[str, Any]) -> str:
    """'' if `data` (a head as JSON) is signed by one of `public_keys` (key id → key), else
    what is wrong."""
    from core.ledger.keys import verify

    try:
        size, root, ts = int(data["tree_size"]), str(data["root_hash"]), int(data["timestamp"])
        signature = base64.b64decode(data["signature"])
        key = public_keys.get(data["key_id"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed head: {exc}"
    if key is None:
        return f"signed with key {data.get('key_id')!r}, which is not a trusted key"
    if not verify(key, signature, message(data.get("origin", origin()), size, root, ts)):
        return f"the signature of the head of size {size} does not verify"
    return ""
