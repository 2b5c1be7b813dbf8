"""Shared helpers for models: prefixed random ids (module-level so migrations can reference them)."""

from __future__ import annotations

import secrets


def _make(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def new_user_id() -> str:
    return _make("usr")


def new_account_id() -> str:
    return _make("acc")


def new_membership_id() -> str:
    return _make("mem")


def new_session_id() -> str:
    return _make("ses")


def new_key_id() -> str:
    return _make("key")


def new_project_id() -> str:
    return _make("proj")


def new_image_id() -> str:
    return _make("img")


def new_webhook_id() -> str:
    return _make("wh")


def new_delivery_id() -> str:
    return _make("whd")


def new_payment_event_id() -> str:
    return _make("pay")
