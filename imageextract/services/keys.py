"""API keys: project keys (bound to a project) and dashboard keys (bound to a user). Shown once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from imageextract.context import Context
from imageextract.errors import Conflict, Forbidden, NotFound, ValidationError
from imageextract.models import ApiKey
from imageextract.services.pagination import Page, keyset_page
from imageextract.services.permissions import require_role
from imageextract.services.projects import get_project
from imageextract.services.security import new_api_key


@dataclass
class IssuedKey:
    key: str  # the full key, returned once
    row: ApiKey
    previous_key_id: str | None = None


def _clean_label(label: Any) -> str | None:
    if label is None:
        return None
    if not isinstance(label, str) or len(label) > 200:
        raise ValidationError("label must be a string of at most 200 characters", details={"field": "label"})
    return label.strip() or None


async def _issue(*, account_id: str, kind: str, project_id: str | None, user_id: str | None,
                 label: str | None, conn: Any = None) -> IssuedKey:
    full, prefix, digest = new_api_key()
    row = await ApiKey.create(
        account_id=account_id, project_id=project_id, user_id=user_id, kind=kind, label=label,
        key_prefix=prefix, key_hash=digest, using_db=conn,
    )
    return IssuedKey(key=full, row=row)


async def _project_keys(ctx: Context, project_id: str) -> Any:
    project = await get_project(ctx, project_id)
    return ApiKey.filter(project_id=project.id, kind="project")


async def list_project_keys(ctx: Context, project_id: str) -> list[ApiKey]:
    return list(await (await _project_keys(ctx, project_id)).order_by("created_at", "id"))


async def project_keys_page(ctx: Context, project_id: str, *, first: int, after: str | None) -> Page[ApiKey]:
    return await keyset_page(await _project_keys(ctx, project_id), first=first, after=after, sort="created_at",
                             descending=False)


async def create_project_key(ctx: Context, project_id: str, *, label: Any = None) -> IssuedKey:
    project = await get_project(ctx, project_id)
    principal = require_role(ctx, "admin")
    if project.status != "active":
        raise Conflict("Archived projects cannot get new keys", details={"project_id": project.id})
    return await _issue(
        account_id=principal.account_id, kind="project", project_id=project.id,
        user_id=principal.user.id if principal.user else None, label=_clean_label(label),
    )


async def _project_key(ctx: Context, project_id: str, key_id: str) -> ApiKey:
    project = await get_project(ctx, project_id)
    key = await ApiKey.filter(id=key_id, project_id=project.id, kind="project").first()
    if key is None:
        raise NotFound("API key not found", details={"key_id": key_id})
    return key


async def revoke_project_key(ctx: Context, project_id: str, key_id: str) -> ApiKey:
    key = await _project_key(ctx, project_id, key_id)
    require_role(ctx, "admin")
    await _revoke(key)
    return key


async def rotate_project_key(ctx: Context, project_id: str, key_id: str) -> IssuedKey:
    key = await _project_key(ctx, project_id, key_id)
    principal = require_role(ctx, "admin")
    if key.status != "active":
        raise Conflict("Only active keys can be rotated", details={"key_id": key_id})
    async with in_transaction() as conn:
        revoked = await ApiKey.filter(id=key.id, status="active").using_db(conn).update(
            status="revoked", revoked_at=datetime.now(UTC)
        )
        if revoked == 0:
            raise Conflict("This key was revoked or rotated concurrently", details={"key_id": key_id})
        issued = await _issue(
            account_id=principal.account_id, kind="project", project_id=key.project_id,  # type: ignore[attr-defined]
            user_id=principal.user.id if principal.user else None, label=key.label, conn=conn,
        )
        await ApiKey.filter(id=key.id).using_db(conn).update(replaced_by_id=issued.row.id)
    issued.previous_key_id = key.id
    return issued


async def _revoke(key: ApiKey) -> None:
    if key.status == "revoked":
        return
    now = datetime.now(UTC)
    await ApiKey.filter(id=key.id, status="active").update(status="revoked", revoked_at=now)
    key.status = "revoked"
    key.revoked_at = now


def _dashboard_keys(ctx: Context) -> Any:
    principal = ctx.require_principal()
    if principal.user is None:
        raise Forbidden("Dashboard keys belong to users; project keys cannot manage them")
    return ApiKey.filter(account_id=principal.account_id, user_id=principal.user.id, kind="dashboard")


async def list_dashboard_keys(ctx: Context) -> list[ApiKey]:
    return list(await _dashboard_keys(ctx).order_by("created_at", "id"))


async def dashboard_keys_page(ctx: Context, *, first: int, after: str | None) -> Page[ApiKey]:
    return await keyset_page(_dashboard_keys(ctx), first=first, after=after, sort="created_at", descending=False)


async def create_dashboard_key(ctx: Context, *, label: Any = None) -> IssuedKey:
    principal = ctx.require_principal()
    if principal.user is None:
        raise Forbidden("Dashboard keys belong to users; project keys cannot create them")
    return await _issue(
        account_id=principal.account_id, kind="dashboard", project_id=None, user_id=principal.user.id,
        label=_clean_label(label),
    )


async def revoke_dashboard_key(ctx: Context, key_id: str) -> ApiKey:
    principal = ctx.require_principal()
    if principal.user is None:
        raise Forbidden("Dashboard keys belong to users; project keys cannot revoke them")
    key = await ApiKey.filter(id=key_id, account_id=principal.account_id, kind="dashboard").first()
    if key is None:
        raise NotFound("API key not found", details={"key_id": key_id})
    if key.user_id != principal.user.id and principal.role not in ("owner", "admin"):  # type: ignore[attr-defined]
        raise Forbidden("Only the key's owner or an account admin can revoke it")
    await _revoke(key)
    return key
