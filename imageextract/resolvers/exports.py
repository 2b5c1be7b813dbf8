"""Resolvers for exports: createExport, export(id), and the exportProgress subscription (same services as REST)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from imageextract.schema.context import GQLContext
from imageextract.schema.exports import CreateExportPayload, Export, ExportProgressEvent, ExportSettingsInput
from imageextract.services import exports

GInfo = Info[GQLContext, None]
_SETTINGS = {"format": "format", "preset": "preset", "responsive": "responsive",
             "responsive_sizes": "responsive_sizes", "strip_metadata": "strip_metadata"}


def _settings(value: ExportSettingsInput | None) -> dict[str, Any] | None:
    if value is None or value is strawberry.UNSET:
        return None
    return {key: getattr(value, attr) for key, attr in _SETTINGS.items()
            if getattr(value, attr) is not strawberry.UNSET}


async def create_export(info: GInfo, job_id: strawberry.ID, image_ids: list[strawberry.ID] | None = None,
                        filenames: JSON | None = None, settings: ExportSettingsInput | None = None
                        ) -> CreateExportPayload:
    export = await exports.create_export(
        info.context.ctx, job_id=str(job_id), image_ids=None if image_ids is None else [str(i) for i in image_ids],
        filenames=filenames, settings=_settings(settings))
    return CreateExportPayload(export_id=strawberry.ID(export.id))


async def export(info: GInfo, id: strawberry.ID) -> Export:
    return Export.from_view(await exports.get_export_view(info.context.ctx, str(id)))


def _event(event: exports.ExportEvent) -> ExportProgressEvent:
    return ExportProgressEvent(
        kind=event.kind, export_id=strawberry.ID(event.export_id), status=event.status, current=event.current,
        total=event.total, image_id=strawberry.ID(event.image_id) if event.image_id else None, step=event.step,
        error=event.error, export=Export.from_view(event.export) if event.export else None)


async def export_progress(info: GInfo, export_id: strawberry.ID) -> AsyncGenerator[ExportProgressEvent, None]:
    """Current state first, then every change, ending with `complete` or `error`. An export the caller may not
    see ends this operation with an `error` message (codes as REST's); the socket and its other subscriptions
    stay open (graphql_app.TransportWSHandler)."""
    gctx = info.context
    events = exports.follow(gctx.ctx, str(export_id))
    first = await anext(events)  # a DomainError here is this operation's error
    try:
        if first is not None:
            yield _event(first)
        async for event in events:
            if event is not None:
                yield _event(event)
    finally:
        await events.aclose()


@strawberry.type
class Query:
    export: Export = strawberry.field(resolver=export)


@strawberry.type
class Mutation:
    create_export: CreateExportPayload = strawberry.mutation(resolver=create_export)


@strawberry.type
class Subscription:
    export_progress: AsyncGenerator[ExportProgressEvent, None] = strawberry.subscription(resolver=export_progress)
