"""Resolvers for the account domain: viewer, account, limits, ledger, usage, sign-up, login, logout."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from imageextract import transport
from imageextract.schema.accounts import Account, LedgerEntry, LoginPayload, Usage, Viewer
from imageextract.schema.context import GQLContext
from imageextract.schema.pagination import Connection
from imageextract.schema.plans import Limits
from imageextract.services import accounts, auth, ledger, usage

GInfo = Info[GQLContext, None]


async def viewer(info: GInfo) -> Viewer:
    ctx = info.context.ctx
    principal = ctx.require_principal()
    return Viewer(
        user_id=strawberry.ID(principal.user.id) if principal.user else None,
        email=principal.user.email if principal.user else None,
        auth_method=principal.method,
        account=await account(info),
    )


async def account(info: GInfo) -> Account:
    ctx = info.context.ctx
    summary = await accounts.account_summary(ctx)
    acc = await accounts.get_account(ctx)
    return Account(
        id=strawberry.ID(acc.id), name=acc.name, slug=acc.slug, plan=acc.plan, status=acc.status,
        membership_role=str(summary["membership_role"]), credits=acc.credits,
    )


async def limits(info: GInfo) -> Limits:
    return Limits.from_plan(await accounts.limits_of(info.context.ctx))


async def ledger_entries(info: GInfo, first: int = 50, after: str | None = None) -> Connection[LedgerEntry]:
    page = await ledger.entries_page(info.context.ctx, first=first, after=after)
    return Connection.of(page, LedgerEntry.from_model)


async def account_usage(info: GInfo, since: str | None = None, until: str | None = None) -> Usage:
    data = await usage.account_usage(info.context.ctx, since=since, until=until)
    return Usage(**data)  # type: ignore[arg-type]


async def sign_up(info: GInfo, email: str, password: str, name: str | None = None) -> LoginPayload:
    gctx = info.context
    result = await auth.sign_up(gctx.ctx, email=email, password=password, name=name,
                                user_agent=gctx.request.headers.get("user-agent", ""))
    return _session_payload(info, result)


async def login(info: GInfo, email: str, password: str) -> LoginPayload:
    gctx = info.context
    result = await auth.login(gctx.ctx, email=email, password=password,
                              user_agent=gctx.request.headers.get("user-agent", ""))
    return _session_payload(info, result)


def _session_payload(info: GInfo, result: Any) -> LoginPayload:
    gctx = info.context
    if gctx.response is not None:
        transport.set_session_cookie(gctx.request, gctx.response, result)
    return LoginPayload(
        user_id=strawberry.ID(result.user.id), email=result.user.email,
        account_id=strawberry.ID(result.account.id), expires_at=result.expires_at,
    )


async def logout(info: GInfo) -> bool:
    revoked = await auth.logout(info.context.ctx)
    if info.context.response is not None:
        transport.clear_session_cookie(info.context.request, info.context.response)
    return revoked


@strawberry.type
class Query:
    viewer: Viewer = strawberry.field(resolver=viewer)
    account: Account = strawberry.field(resolver=account)
    limits: Limits = strawberry.field(resolver=limits)
    ledger: Connection[LedgerEntry] = strawberry.field(resolver=ledger_entries)
    usage: Usage = strawberry.field(resolver=account_usage)


@strawberry.type
class Mutation:
    sign_up: LoginPayload = strawberry.mutation(resolver=sign_up)
    log_in: LoginPayload = strawberry.mutation(resolver=login)
    log_out: bool = strawberry.mutation(resolver=logout)
