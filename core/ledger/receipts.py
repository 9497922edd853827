"""Receipts as tokens: a JWS (RFC 7515 compact serialization, EdDSA per RFC 8037) signed
with the ledger key, so any language's JOSE library can check one against
`GET /api/v1/ledger/keys`. The claims are the issuer's; this module only signs and opens.

    header  {"alg": "EdDSA", "kid": <key id>, "typ": "hitl-receipt+jws"}
    payload canonical JSON of the claims
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from core.canonical import canonical_json
from core.ledger.keys import verify
from core.ledger.sequencer import signer

TYPE = "hitl-receipt+jws"


class InvalidReceipt(ValueError):
    """Not a receipt this portal signed (malformed, unknown key, bad signature)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidReceipt("not base64url") from None


def sign(claims: dict[str, Any]) -> str:
    key = signer()
    header = _b64(canonical_json({"alg": "EdDSA", "kid": key.key_id, "typ": TYPE}).encode())
    payload = _b64(canonical_json(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{_b64(key.sign(signing_input))}"


def open_token(token: str, public_keys: dict[str, Any]) -> dict[str, Any]:
    """The claims of a receipt signed by one of `public_keys` (key id → key), else
    InvalidReceipt saying why."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise InvalidReceipt("not a receipt (expected header.payload.signature)")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
    except ValueError:
        raise InvalidReceipt("not a receipt (undecodable JSON)") from None
    if not isinstance(header, dict) or header.get("alg") != "EdDSA" or header.get("typ") != TYPE:
        raise InvalidReceipt("not a HITL receipt (alg/typ)")
    kid = header.get("kid")
    if not isinstance(kid, str):  # a list or an object would not even be a dict key
        raise InvalidReceipt("not a receipt (kid is not a string)")
    key = public_keys.get(kid)
    if key is None:
        raise InvalidReceipt(f"signed with an unknown key {kid!r}")
    if not verify(key, _unb64(signature_b64), f"{header_b64}.{payload_b64}".encode()):
        raise InvalidReceipt("the signature does not verify (tampered or forged)")
    if not isinstance(claims, dict):
        raise InvalidReceipt("not a receipt (claims are not an object)")
    return claims
