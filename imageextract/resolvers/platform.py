"""Resolvers for accounts, credits, ledger, limits, usage, projects, keys and sessions."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from imageextract.errors import ValidationError
from imageextract.schema.context import GQLContext
from imageextract.schema.types import (
    Account,
    ApiKey,
    IssuedKey,
    LedgerEntry,
    Limits,
    LoginPayload,
    Project,
    Usage,
    Viewer,
)
from imageextract.services import accounts, auth, keys, ledger, projects, usage
from imageextract.services.plans import get_plan

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
    acc = await accounts.get_account(info.context.ctx)
    return Limits.from_plan(get_plan(acc.plan))


async def ledger_entries(info: GInfo, limit: int = 50) -> list[LedgerEntry]:
    principal = info.context.ctx.require_principal()
    rows = await ledger.recent_entries(account_id=principal.account_id, limit=limit)
    return [LedgerEntry.from_model(e) for e in rows]


async def account_usage(info: GInfo, since: str | None = None, until: str | None = None) -> Usage:
    data = await usage.account_usage(
        info.context.ctx,
        since=usage.parse_instant(since, field="since"),
        until=usage.parse_instant(until, field="until"),
    )
    return Usage(**data)  # type: ignore[arg-type]


async def project_list(info: GInfo, include_archived: bool = False) -> list[Project]:
    rows = await projects.list_projects(info.context.ctx, include_archived=include_archived)
    return [Project.from_model(p) for p in rows]


async def project(info: GInfo, id: strawberry.ID) -> Project:
    return Project.from_model(await projects.get_project(info.context.ctx, str(id)))


async def project_keys(info: GInfo, project_id: strawberry.ID) -> list[ApiKey]:
    return [ApiKey.from_model(k) for k in await keys.list_project_keys(info.context.ctx, str(project_id))]


async def dashboard_keys(info: GInfo) -> list[ApiKey]:
    return [ApiKey.from_model(k) for k in await keys.list_dashboard_keys(info.context.ctx)]


# Mutations ------------------------------------------------------------------------------------


@strawberry.input
class CreateProjectInput:
    name: str
    slug: str | None = None
    site_url: str | None = None
    default_webhook_url: str | None = None


@strawberry.input
class UpdateProjectInput:
    name: str | None = strawberry.UNSET
    slug: str | None = strawberry.UNSET
    site_url: str | None = strawberry.UNSET
    default_webhook_url: str | None = strawberry.UNSET


async def create_project(info: GInfo, input: CreateProjectInput) -> Project:
    p = await projects.create_project(
        info.context.ctx, name=input.name, slug=input.slug, site_url=input.site_url,
        default_webhook_url=input.default_webhook_url,
    )
    return Project.from_model(p)


async def update_project(info: GInfo, id: strawberry.ID, input: UpdateProjectInput) -> Project:
    changes: dict[str, Any] = {
        k: v for k, v in vars(input).items() if v is not strawberry.UNSET
    }
    if "name" in changes and changes["name"] is None:
        raise ValidationError("name cannot be null", details={"field": "name"})
    p = await projects.update_project(info.context.ctx, str(id), changes=changes)
    return Project.from_model(p)


async def archive_project(info: GInfo, id: strawberry.ID) -> Project:
    return Project.from_model(await projects.archive_project(info.context.ctx, str(id)))


def _issued(issued: keys.IssuedKey) -> IssuedKey:
    return IssuedKey(
        key=issued.key, row=ApiKey.from_model(issued.row),
        previous_key_id=strawberry.ID(issued.previous_key_id) if issued.previous_key_id else None,
    )


async def create_project_key(info: GInfo, project_id: strawberry.ID, label: str | None = None) -> IssuedKey:
    return _issued(await keys.create_project_key(info.context.ctx, str(project_id), label=label))


async def revoke_project_key(info: GInfo, project_id: strawberry.ID, key_id: strawberry.ID) -> ApiKey:
    return ApiKey.from_model(await keys.revoke_project_key(info.context.ctx, str(project_id), str(key_id)))


async def rotate_project_key(info: GInfo, project_id: strawberry.ID, key_id: strawberry.ID) -> IssuedKey:
    return _issued(await keys.rotate_project_key(info.context.ctx, str(project_id), str(key_id)))


async def create_dashboard_key(info: GInfo, label: str | None = None) -> IssuedKey:
    return _issued(await keys.create_dashboard_key(info.context.ctx, label=label))


async def revoke_dashboard_key(info: GInfo, id: strawberry.ID) -> ApiKey:
    return ApiKey.from_model(await keys.revoke_dashboard_key(info.context.ctx, str(id)))


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
    from imageextract.rest_compat.auth import set_session_cookie

    gctx = info.context
    if gctx.response is not None:
        set_session_cookie(gctx.request, gctx.response, result)
    return LoginPayload(
        user_id=strawberry.ID(result.user.id), email=result.user.email,
        account_id=strawberry.ID(result.account.id), expires_at=result.expires_at,
    )


async def logout(info: GInfo) -> bool:
    from imageextract.rest_compat.auth import clear_session_cookie

    revoked = await auth.logout(info.context.ctx)
    if info.context.response is not None:
        clear_session_cookie(info.context.request, info.context.response)
    return revoked
