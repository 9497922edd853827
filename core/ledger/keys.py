"""The ledger's Ed25519 signing key: one place that reads it, generates it for development
and derives its public form. Settings call `load_signing_key` (like SECRET_KEY): production
requires `HITL_LEDGER_SIGNING_KEY`, development generates `var/ledger_signing_key` once.

Formats accepted for the private key: base64 (standard or URL-safe) of the 32-byte seed, or
an unencrypted PKCS#8 PEM. The key id is the first 16 hex digits of sha256(raw public key).
Nothing here imports Django models, so settings can use it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DEV_KEY_FILE = "ledger_signing_key"


class LedgerKeyError(ValueError):
    """A key that cannot be used (wrong length, not base64, not Ed25519)."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LedgerKeyError(f"not base64: {exc}") from None


def parse_private_key(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise LedgerKeyError(f"not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise LedgerKeyError("the PEM key is not an Ed25519 key")
        return key
    seed = unb64(text)
    if len(seed) != 32:
        raise LedgerKeyError(f"expected a 32-byte Ed25519 seed, got {len(seed)} bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def parse_public_key(text: str) -> Ed25519PublicKey:
    raw = unb64(text)
    if len(raw) != 32:
        raise LedgerKeyError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def generate_seed() -> str:
    return b64(os.urandom(32))


def load_signing_key(value: str, var_dir: Path, debug: bool) -> str:
    """The configured key (validated), or in development one generated into `var_dir`.
    Raises ValueError with a sentence for the operator when it cannot be had."""
    if value:
        parse_private_key(value)
        return value
    if not debug:
        raise LedgerKeyError(
            "HITL_LEDGER_SIGNING_KEY is not set. Production (DEBUG=0) refuses to start without "
            "the ledger's Ed25519 signing key: generate one with `python -c \"import base64,os;"
            'print(base64.b64encode(os.urandom(32)).decode())"` and keep it secret '
            "(losing it means starting a new key: old heads stay verifiable with its public key)."
        )
    path = var_dir / DEV_KEY_FILE
    if not path.exists():
        path.write_text(generate_seed())
        path.chmod(0o600)
    value = path.read_text().strip()
    parse_private_key(value)
    return value


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


class Signer:
    """The private key in use, with its public key and id."""

    def __init__(self, private_key_text: str):
        self._private = parse_private_key(private_key_text)
        self.public = self._private.public_key()
        self.public_b64 = b64(raw_public(self.public))
        self.key_id = key_id(self.public)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def verify(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True
