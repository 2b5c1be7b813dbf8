"""Projects: list, create, read, update, archive. Slugs are unique per account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from imageextract.context import Context
from imageextract.errors import Conflict, NotFound, ValidationError
from imageextract.models import Project
from imageextract.services.pagination import Page, keyset_page
from imageextract.services.permissions import require_project_scope, require_role
from imageextract.services.slugs import SLUG_RE, slugify
from imageextract.services.urls import check_public_url, validate_http_url
from imageextract.services.webhook_signing import new_secret

_UNSET: Any = object()


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name is required", details={"field": "name"})
    name = name.strip()
    if len(name) > 200:
        raise ValidationError("name must be at most 200 characters", details={"field": "name"})
    return name


def _clean_slug(slug: Any) -> str:
    if not isinstance(slug, str) or not SLUG_RE.match(slug) or len(slug) > 100:
        raise ValidationError(
            "slug must be lowercase letters, digits and single hyphens", details={"field": "slug"}
        )
    return slug


MAX_RETENTION_DAYS = 3650


def clean_retention_days(value: Any) -> int | None:
    """Whole days, 1 to 3650, or null to keep finished jobs forever."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RETENTION_DAYS:
        raise ValidationError(f"retention_days must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, "
                              "or null to keep jobs forever", details={"field": "retention_days"})
    return value


def _clean_url(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    return validate_http_url(value, field=field)


async def projects_page(ctx: Context, *, include_archived: bool = False, first: int,
                        after: str | None) -> Page[Project]:
    return await keyset_page(_projects(ctx, include_archived=include_archived), first=first, after=after,
                             sort="created_at", descending=False)


async def list_projects(ctx: Context, *, include_archived: bool = False) -> list[Project]:
    return list(await _projects(ctx, include_archived=include_archived).order_by("created_at", "id"))


def _projects(ctx: Context, *, include_archived: bool) -> Any:
    principal = ctx.require_principal()
    query = Project.filter(account_id=principal.account_id)
    if principal.project_id is not None:
        query = query.filter(id=principal.project_id)
    if not include_archived:
        query = query.filter(status="active")
    return query


async def get_project(ctx: Context, project_id: str) -> Project:
    principal = ctx.require_principal()
    project = await Project.filter(id=project_id, account_id=principal.account_id).first()
    if project is None:
        raise NotFound("Project not found", details={"project_id": project_id})
    require_project_scope(principal, project.id)
    return project


async def _free_slug(account_id: str, base: str) -> str:
    slug, n = base, 2
    while await Project.filter(account_id=account_id, slug=slug).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


async def create_project(
    ctx: Context, *, name: Any, slug: Any = None, site_url: Any = None, default_webhook_url: Any = None,
    retention_days: Any = _UNSET,
) -> Project:
    """`retention_days` left out takes IMAGEEXTRACT_DEFAULT_RETENTION_DAYS; null keeps jobs forever."""
    principal = require_role(ctx, "admin")
    name = _clean_name(name)
    retention = ctx.settings.default_retention_days if retention_days is _UNSET else \
        clean_retention_days(retention_days)
    site = _clean_url(site_url, "site_url")
    hook = _clean_url(default_webhook_url, "default_webhook_url")
    if hook is not None:

        await check_public_url(ctx, hook, field="default_webhook_url")
    if slug is not None:
        slug = _clean_slug(slug)
        if await Project.filter(account_id=principal.account_id, slug=slug).exists():
            raise Conflict(f"A project with slug {slug!r} already exists", details={"field": "slug"})
    else:
        slug = await _free_slug(principal.account_id, slugify(name))
    try:

        return await Project.create(
            account_id=principal.account_id, name=name, slug=slug, site_url=site, default_webhook_url=hook,
            webhook_secret=new_secret(), retention_days=retention,
        )
    except IntegrityError as exc:
        raise Conflict(f"A project with slug {slug!r} already exists", details={"field": "slug"}) from exc


async def update_project(ctx: Context, project_id: str, *, changes: dict[str, Any]) -> Project:
    project = await get_project(ctx, project_id)
    principal = require_role(ctx, "admin")
    allowed = {"name", "slug", "site_url", "default_webhook_url", "retention_days"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}", details={"fields": sorted(unknown)})
    if not changes:
        raise ValidationError("Nothing to update", details={"allowed": sorted(allowed)})
    if project.status == "archived":
        raise Conflict("Archived projects cannot be changed", details={"project_id": project.id})
    if "name" in changes:
        project.name = _clean_name(changes["name"])
    if "slug" in changes:
        slug = _clean_slug(changes["slug"])
        if slug != project.slug and await Project.filter(account_id=principal.account_id, slug=slug).exists():
            raise Conflict(f"A project with slug {slug!r} already exists", details={"field": "slug"})
        project.slug = slug
    if "site_url" in changes:
        project.site_url = _clean_url(changes["site_url"], "site_url")
    if "default_webhook_url" in changes:
        hook = _clean_url(changes["default_webhook_url"], "default_webhook_url")
        if hook is not None:

            await check_public_url(ctx, hook, field="default_webhook_url")
        project.default_webhook_url = hook
    if "retention_days" in changes:
        project.retention_days = clean_retention_days(changes["retention_days"])
    try:
        await project.save()
    except IntegrityError as exc:
        raise Conflict("A project with this slug already exists", details={"field": "slug"}) from exc
    return project


async def archive_project(ctx: Context, project_id: str) -> Project:
    project = await get_project(ctx, project_id)
    require_role(ctx, "admin")
    if project.is_default:
        raise Conflict("The default project cannot be archived", details={"project_id": project.id})
    if project.status != "archived":
        project.status = "archived"
        project.archived_at = datetime.now(UTC)
        await project.save(update_fields=["status", "archived_at", "updated_at"])
    return project


async def rotate_webhook_secret(ctx: Context, project_id: str) -> Project:
    """A new secret for deliveries to the project's default_webhook_url, in effect at once; the caller
    shows `project.webhook_secret` this once (reads never include it)."""

    project = await get_project(ctx, project_id)
    require_role(ctx, "admin")
    if project.status == "archived":
        raise Conflict("Archived projects cannot be changed", details={"project_id": project.id})
    project.webhook_secret = new_secret()
    await project.save(update_fields=["webhook_secret", "updated_at"])
    return project


async def default_project(account_id: str) -> Project | None:
    return await Project.filter(account_id=account_id, is_default=True).first()
