"""Secrets: API key format and hashing, session tokens, passwords (argon2)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_PREFIX = "ie_live_"
_hasher = PasswordHasher()


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (full key shown once, prefix kept in clear, SHA-256 hex stored)."""
    secret = secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")
    full = f"{API_KEY_PREFIX}{secret}"
    return full, key_prefix(full), sha256_hex(full)


def key_prefix(full_key: str) -> str:
    return full_key[: len(API_KEY_PREFIX) + 6] + "..."


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        # Spend the same time as a real check so unknown users are not told apart by timing.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
