"""Resolvers for projects and API keys (project keys and dashboard keys)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from imageextract.schema.context import GQLContext
from imageextract.schema.pagination import Connection
from imageextract.schema.projects import ApiKey, IssuedKey, Project
from imageextract.services import keys, projects

GInfo = Info[GQLContext, None]


async def project_list(info: GInfo, include_archived: bool = False, first: int = 100,
                       after: str | None = None) -> Connection[Project]:
    page = await projects.projects_page(info.context.ctx, include_archived=include_archived, first=first, after=after)
    return Connection.of(page, Project.from_model)


async def project(info: GInfo, id: strawberry.ID) -> Project:
    return Project.from_model(await projects.get_project(info.context.ctx, str(id)))


async def project_keys(info: GInfo, project_id: strawberry.ID, first: int = 100,
                       after: str | None = None) -> Connection[ApiKey]:
    page = await keys.project_keys_page(info.context.ctx, str(project_id), first=first, after=after)
    return Connection.of(page, ApiKey.from_model)


async def dashboard_keys(info: GInfo, first: int = 100, after: str | None = None) -> Connection[ApiKey]:
    return Connection.of(await keys.dashboard_keys_page(info.context.ctx, first=first, after=after), ApiKey.from_model)


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
    return Project.from_model(p, with_secret=True)


async def update_project(info: GInfo, id: strawberry.ID, input: UpdateProjectInput) -> Project:
    changes: dict[str, Any] = {
        k: v for k, v in vars(input).items() if v is not strawberry.UNSET
    }
    p = await projects.update_project(info.context.ctx, str(id), changes=changes)
    return Project.from_model(p)


async def archive_project(info: GInfo, id: strawberry.ID) -> Project:
    return Project.from_model(await projects.archive_project(info.context.ctx, str(id)))


async def rotate_project_webhook_secret(info: GInfo, id: strawberry.ID) -> Project:
    return Project.from_model(await projects.rotate_webhook_secret(info.context.ctx, str(id)), with_secret=True)


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
    projects: Connection[Project] = strawberry.field(resolver=project_list)
    project: Project = strawberry.field(resolver=project)
    api_keys: Connection[ApiKey] = strawberry.field(resolver=project_keys)
    dashboard_keys: Connection[ApiKey] = strawberry.field(resolver=dashboard_keys)


@strawberry.type
class Mutation:
    create_project: Project = strawberry.mutation(resolver=create_project)
    update_project: Project = strawberry.mutation(resolver=update_project)
    archive_project: Project = strawberry.mutation(resolver=archive_project)
    rotate_project_webhook_secret: Project = strawberry.mutation(resolver=rotate_project_webhook_secret)
    create_api_key: IssuedKey = strawberry.mutation(resolver=create_project_key)
    revoke_api_key: ApiKey = strawberry.mutation(resolver=revoke_project_key)
    rotate_api_key: IssuedKey = strawberry.mutation(resolver=rotate_project_key)
    create_dashboard_key: IssuedKey = strawberry.mutation(resolver=create_dashboard_key)
    revoke_dashboard_key: ApiKey = strawberry.mutation(resolver=revoke_dashboard_key)
