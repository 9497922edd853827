"""Secrets at rest (webhook secrets, TOTP secrets, recovery-code seeds), encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from the maintained `cryptography` package).

Keys come from HITL_ENCRYPTION_KEY: one or more Fernet keys, comma-separated. The first
encrypts; every one decrypts, so a key is rotated by putting a new key first, running
`manage.py rotate_encryption_key` (re-encrypts every stored secret with it), and then
dropping the old key. Production refuses to start without a key; development generates one
into var/ (see hitlportal/settings.py)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def generate_key() -> str:
    return Fernet.generate_key().decode()


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"HITL_ENCRYPTION_KEY holds a key that is not a Fernet key ({exc}); generate one "
            'with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        ) from None


def _keys() -> MultiFernet:
    return _fernet(tuple(settings.HITL_ENCRYPTION_KEYS))


def encrypt(text: str) -> str:
    return _keys().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with HITL_ENCRYPTION_KEY: the key is wrong, "
            "or the one it was encrypted with was dropped before rotate_encryption_key ran."
        ) from None


def is_encrypted(value: str) -> bool:
    try:
        _keys().decrypt(value.encode())
    except (InvalidToken, ValueError):
        return False
    return True


def rotate(token: str) -> str:
    """The same secret, encrypted with the first (current) key."""
    return _keys().rotate(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """Text that is plain in Python and encrypted in the database."""

    def from_db_value(self, value, expression, connection):
        return value if value in (None, "") else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value if value in (None, "") else encrypt(value)
