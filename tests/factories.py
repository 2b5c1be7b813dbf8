"""Builders for test data, through the real services."""

from __future__ import annotations

import secrets
from typing import Any


async def make_account(*, plan: str = "pro", credits: int | None = None, password: str | None = None,
                       name: str | None = None) -> dict[str, Any]:
    from imageextract.services.admin import create_account_with_key

    tag = secrets.token_hex(4)
    created = await create_account_with_key(
        name=name or f"Acme {tag}", email=f"owner-{tag}@example.com", password=password, plan=plan, credits=credits
    )
    created["email"] = f"owner-{tag}@example.com"
    created["headers"] = {"Authorization": f"Bearer {created['api_key']}"}
    return created


async def add_member(account_id: str, *, role: str, password: str | None = None) -> dict[str, Any]:
    """A user with `role` in the account, plus a dashboard key of theirs."""
    from imageextract.models import Membership, User
    from imageextract.services.keys import _issue
    from imageextract.services.security import hash_password

    tag = secrets.token_hex(4)
    user = await User.create(email=f"{role}-{tag}@example.com", name=role,
                             password_hash=hash_password(password) if password else None)
    await Membership.create(user=user, account_id=account_id, role=role)
    issued = await _issue(account_id=account_id, kind="dashboard", project_id=None, user_id=user.id, label=role)
    return {"user_id": user.id, "email": user.email, "api_key": issued.key,
            "headers": {"Authorization": f"Bearer {issued.key}"}}
