"""API tokens: `hitl_<prefix>_<secret>`. Only the prefix (indexed, for lookup) and a sha256 of
the secret are stored; comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "hitl"


@dataclass(frozen=True)
class NewToken:
    prefix: str
    secret_hash: str
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate(kind: str = "") -> NewToken:
    """kind is a short marker in the visible token ('a' agent, 'u' user) for humans' sake."""
    prefix = (kind + secrets.token_hex(6))[:12]
    secret = secrets.token_urlsafe(32)
    return NewToken(prefix, hash_secret(secret), f"{TOKEN_PREFIX}_{prefix}_{secret}")


def split(token: str) -> tuple[str, str] | None:
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)
