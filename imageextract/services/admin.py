"""Operator actions (the `imageextract admin` commands and the demo account)."""

from __future__ import annotations

from typing import Any

from tortoise.transactions import in_transaction

from imageextract.errors import NotFound, ValidationError
from imageextract.models import Account, Membership
from imageextract.services import accounts, ledger
from imageextract.services.keys import _issue
from imageextract.services.plans import get_plan


async def create_account_with_key(
    *, name: str, email: str, password: str | None, plan: str, credits: int | None,
    retention_days: int | None = None,
) -> dict[str, Any]:
    created = await accounts.create_account(name=name, email=email, password=password, plan=plan, credits=credits,
                                            retention_days=retention_days)
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

    membership = await Membership.filter(user__email=email, role="owner").first()
    if membership is None:
        return None
    issued = await _issue(account_id=membership.account_id, kind="dashboard", project_id=None,  # type: ignore[attr-defined]
                          user_id=membership.user_id, label=label)  # type: ignore[attr-defined]
    return issued.key
async def grant_credits(*, account_id: str, credits: int, reason: str) -> dict[str, Any]:
    """An operator's grant: one `grant` ledger entry with the reason as its note."""
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > 300:
        raise ValidationError("A reason is required (at most 300 characters)", details={"field": "reason"})
    if credits <= 0:
        raise ValidationError("credits must be a positive number", details={"field": "credits"})
    entry = await ledger.credit(account_id=account_id, amount=credits, entry_type="grant",
                                note=f"operator grant: {reason}")
    return {"account_id": account_id, "credits_granted": credits, "balance": entry.balance_after,
            "ledger_entry_id": entry.id}


async def set_plan(*, account_id: str, plan: str, credits: int | None = None) -> dict[str, Any]:
    """Put the account on `plan` and grant that plan's `credits_included` (or `credits`) as a `plan_grant`
    ledger entry, in one transaction. A later payment event for a subscription of the account recomputes
    the plan from its subscriptions (services.billing)."""
    plan_obj = get_plan(plan)
    grant = plan_obj.credits_included if credits is None else credits
    if grant < 0:
        raise ValidationError("credits must be zero or more", details={"field": "credits"})
    async with in_transaction() as conn:
        account = await Account.filter(id=account_id).using_db(conn).first()
        if account is None:
            raise NotFound("Account not found", details={"account_id": account_id})
        previous = account.plan
        await Account.filter(id=account_id).using_db(conn).update(plan=plan_obj.plan)
        entry = None
        if grant > 0:
            entry = await ledger.credit(account_id=account_id, amount=grant, entry_type="plan_grant",
                                        note=f"operator set plan {previous} -> {plan_obj.plan}", conn=conn)
        balance = await ledger.balance_of(account_id, conn=conn)
    return {"account_id": account_id, "plan": plan_obj.plan, "previous_plan": previous,
            "credits_granted": grant, "balance": balance, "ledger_entry_id": entry.id if entry else None}
