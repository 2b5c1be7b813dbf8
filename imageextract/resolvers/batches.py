"""Resolvers for batches: batch(id), createBatch, cancelBatch and the batchProgress subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from imageextract.schema.batches import Batch, BatchProgressEvent, CreateBatchPayload
from imageextract.schema.context import GQLContext
from imageextract.services import batch_runs, batches

GInfo = Info[GQLContext, None]


@strawberry.input
class BatchSourceInput:
    type: str = strawberry.field(description="files | urls")
    file_ids: list[str] | None = None
    urls: list[str] | None = None


@strawberry.input
class CreateBatchInput:
    source: BatchSourceInput
    metadata: JSON | None = None
    project_id: strawberry.ID | None = None
    idempotency_key: str | None = None


async def batch(info: GInfo, id: strawberry.ID) -> Batch:
    return Batch.from_view(await batches.read_batch(info.context.ctx, str(id)))


async def create_batch(info: GInfo, input: CreateBatchInput) -> CreateBatchPayload:
    source: dict[str, Any] = {"type": input.source.type}
    if input.source.file_ids is not None:
        source["file_ids"] = input.source.file_ids
    if input.source.urls is not None:
        source["urls"] = input.source.urls
    submitted = await batches.submit_batch(info.context.ctx, source=source, metadata=input.metadata,
                                           project_id=str(input.project_id) if input.project_id else None,
                                           idempotency_key=input.idempotency_key)
    return CreateBatchPayload(batch=Batch.from_view(submitted.batch), replayed=not submitted.created)


async def cancel_batch(info: GInfo, id: strawberry.ID) -> Batch:
    return Batch.from_view(await batches.cancel_batch(info.context.ctx, str(id)))


async def batch_progress(info: GInfo, batch_id: strawberry.ID) -> AsyncGenerator[BatchProgressEvent, None]:
    """Counts now, then throttled updates, ending after the final state."""
    async for view in batch_runs.follow_counts(info.context.ctx, str(batch_id)):
        yield BatchProgressEvent.from_view(view)


@strawberry.type
class Query:
    batch: Batch = strawberry.field(resolver=batch)


@strawberry.type
class Mutation:
    create_batch: CreateBatchPayload = strawberry.mutation(resolver=create_batch)
    cancel_batch: Batch = strawberry.mutation(resolver=cancel_batch)


@strawberry.type
class Subscription:
    batch_progress: AsyncGenerator[BatchProgressEvent, None] = strawberry.subscription(resolver=batch_progress)
