"""Resolvers for projects and API keys (project keys and dashboard keys)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from imageextract.errors import ValidationError
from imageextract.schema.context import GQLContext
from imageextract.schema.projects import ApiKey, IssuedKey, Project
from imageextract.services import keys, projects

GInfo = Info[GQLContext, None]


async def project_list(info: GInfo, include_archived: bool = False) -> list[Project]:
    rows = await projects.list_projects(info.context.ctx, include_archived=include_archived)
    return [Project.from_model(p) for p in rows]


async def project(info: GInfo, id: strawberry.ID) -> Project:
    return Project.from_model(await projects.get_project(info.context.ctx, str(id)))


async def project_keys(info: GInfo, project_id: strawberry.ID) -> list[ApiKey]:
    return [ApiKey.from_model(k) for k in await keys.list_project_keys(info.context.ctx, str(project_id))]


async def dashboard_keys(info: GInfo) -> list[ApiKey]:
    return [ApiKey.from_model(k) for k in await keys.list_dashboard_keys(info.context.ctx)]


@strawberry.input
class CreateProjectInput:
    name: str
    slug: str | None = None
    site_url: str | None = None
    default_webhook_url: str | None = None
    retention_days: int | None = strawberry.UNSET


@strawberry.input
class UpdateProjectInput:
    name: str | None = strawberry.UNSET
    slug: str | None = strawberry.UNSET
    site_url: str | None = strawberry.UNSET
    default_webhook_url: str | None = strawberry.UNSET
    retention_days: int | None = strawberry.UNSET


async def create_project(info: GInfo, input: CreateProjectInput) -> Project:
    p = await projects.create_project(
        info.context.ctx, name=input.name, slug=input.slug, site_url=input.site_url,
        default_webhook_url=input.default_webhook_url,
        **({} if input.retention_days is strawberry.UNSET else {"retention_days": input.retention_days}),
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


@strawberry.type
class Query:
    projects: list[Project] = strawberry.field(resolver=project_list)
    project: Project = strawberry.field(resolver=project)
    api_keys: list[ApiKey] = strawberry.field(resolver=project_keys)
    dashboard_keys: list[ApiKey] = strawberry.field(resolver=dashboard_keys)


@strawberry.type
class Mutation:
    create_project: Project = strawberry.mutation(resolver=create_project)
    update_project: Project = strawberry.mutation(resolver=update_project)
    archive_project: Project = strawberry.mutation(resolver=archive_project)
    create_api_key: IssuedKey = strawberry.mutation(resolver=create_project_key)
    revoke_api_key: ApiKey = strawberry.mutation(resolver=revoke_project_key)
    rotate_api_key: IssuedKey = strawberry.mutation(resolver=rotate_project_key)
    create_dashboard_key: IssuedKey = strawberry.mutation(resolver=create_dashboard_key)
    revoke_dashboard_key: ApiKey = strawberry.mutation(resolver=revoke_dashboard_key)
