"""Accounts, users and memberships: sign-up, the account summary, plan changes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from imageextract.context import Context
from imageextract.errors import Conflict, ValidationError
from imageextract.models import Account, Membership, Project, User
from imageextract.services import ledger
from imageextract.services.plans import Plan, get_plan
from imageextract.services.security import hash_password
from imageextract.services.slugs import slugify
from imageextract.services.webhook_signing import new_secret

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


@dataclass
class NewAccount:
    account: Account
    user: User
    membership: Membership
    project: Project


def normalize_email(email: str) -> str:
    if not isinstance(email, str):
        raise ValidationError("A valid email address is required", details={"field": "email"})
    email = email.strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise ValidationError("A valid email address is required", details={"field": "email"})
    return email


def validate_password(password: str | None) -> None:
    if password is None:
        return
    if len(password) < MIN_PASSWORD or len(password) > 1024:
        raise ValidationError(
            f"Password must be {MIN_PASSWORD} to 1024 characters", details={"field": "password"}
        )


async def _unique_account_slug(name: str) -> str:
    base = slugify(name)
    slug = base
    n = 2
    while await Account.filter(slug=slug).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


async def create_account(
    *, name: str, email: str, password: str | None = None, plan: str = "free", credits: int | None = None,
    retention_days: int | None = None,
) -> NewAccount:
    """A new account with its owner, a Default project (keeping finished jobs `retention_days`, None: forever)
    and the plan's starting credits in the ledger."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 200:
        raise ValidationError("Account name is required (at most 200 characters)", details={"field": "name"})
    email = normalize_email(email)
    validate_password(password)
    plan_obj = get_plan(plan)
    grant = plan_obj.credits_included if credits is None else credits
    if grant < 0:
        raise ValidationError("credits must be zero or more", details={"field": "credits"})
    password_hash = hash_password(password) if password else None
    for _ in range(5):
        try:
            async with in_transaction() as conn:
                if await User.filter(email=email).using_db(conn).exists():
                    raise Conflict("An account with this email already exists", details={"field": "email"})
                user = await User.create(email=email, name=name, password_hash=password_hash, using_db=conn)
                account = await Account.create(
                    name=name, slug=await _unique_account_slug(name), plan=plan_obj.plan, using_db=conn
                )
                membership = await Membership.create(user=user, account=account, role="owner", using_db=conn)

                project = await Project.create(
                    account=account, name="Default", slug="default", is_default=True, webhook_secret=new_secret(),
                    retention_days=retention_days, using_db=conn,
                )
                if grant > 0:
                    await ledger.credit(
                        account_id=account.id, amount=grant, entry_type="grant",
                        note=f"{plan_obj.plan} plan starting credits", conn=conn,
                    )
                    account.credits = grant
                return NewAccount(account=account, user=user, membership=membership, project=project)
        except IntegrityError as exc:
            if "email" in str(exc).lower():
                raise Conflict("An account with this email already exists", details={"field": "email"}) from exc
            continue  # slug race: try the next free slug
    raise Conflict("Could not allocate a unique account slug; try again")


async def account_summary(ctx: Context) -> dict[str, object]:
    principal = ctx.require_principal()
    account = await Account.get(id=principal.account_id)
    return {
        "id": account.id,
        "name": account.name,
        "slug": account.slug,
        "plan": account.plan,
        "status": account.status,
        "membership_role": principal.role,
    }


async def limits_of(ctx: Context) -> Plan:
    """The caller's account's plan: the limits every check uses."""
    return get_plan((await get_account(ctx)).plan)


async def get_account(ctx: Context) -> Account:
    principal = ctx.require_principal()
    return await Account.get(id=principal.account_id)
