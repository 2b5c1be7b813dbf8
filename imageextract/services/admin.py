"""Operator actions (the `imageextract admin` commands and the demo account)."""

from __future__ import annotations

from typing import Any

from imageextract.services import accounts
from imageextract.services.keys import _issue


async def create_account_with_key(
    *, name: str, email: str, password: str | None, plan: str, credits: int | None,
) -> dict[str, Any]:
    created = await accounts.create_account(name=name, email=email, password=password, plan=plan, credits=credits)
    # The owner's own (dashboard) key: it acts with the owner's role, so it can manage projects and keys.
    issued = await _issue(
        account_id=created.account.id, kind="dashboard", project_id=None, user_id=created.user.id,
        label="Created by admin",
    )
    return {
        "account_id": created.account.id,
        "user_id": created.user.id,
        "project_id": created.project.id,
        "api_key": issued.key,
        "plan": created.account.plan,
        "credits": created.account.credits,
    }


async def issue_owner_key(*, email: str, label: str) -> str | None:
    """A new dashboard key for the owner of the account whose owner has `email` (None if there is none)."""
    from imageextract.models import Membership

    membership = await Membership.filter(user__email=email, role="owner").first()
    if membership is None:
        return None
    issued = await _issue(account_id=membership.account_id, kind="dashboard", project_id=None,  # type: ignore[attr-defined]
                          user_id=membership.user_id, label=label)  # type: ignore[attr-defined]
    return issued.key
