"""Strawberry types for jobs, items, images, webhooks and live progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from imageextract.schema.context import GQLContext


@strawberry.type
class ImageResult:
    id: strawberry.ID
    url: str
    source_url: str | None
    source_kind: str
    filename: str
    width: int | None
    height: int | None
    aspect_ratio: float | None
    format: str | None
    file_size: int | None
    color_space: str | None
    has_alpha: bool | None
    alt_text: str | None
    title: str | None
    aria_label: str | None
    is_lazy_loaded: bool
    storage_url: str | None
    storage_key: str | None
    document_page: int | None
    document_slide: int | None
    document_asset_hash: str | None
    document_occurrence_count: int | None
    content_hash: str | None
    group_id: strawberry.ID
    provenance: str | None
    page_url: str | None
    variants: JSON
    sheet: str | None
    anchor_cell: str | None

    @classmethod
    def from_model(cls, image: Any, info: Info[GQLContext, None]) -> ImageResult:
        from imageextract.rest_compat.serializers import image_json

        ctx = info.context.ctx
        data = image_json(image, base_url=ctx.base_url or "", storage=ctx.services.storage)
        data.pop("error", None)
        data["id"] = strawberry.ID(data["id"])
        data["group_id"] = strawberry.ID(data["group_id"])
        return cls(**data)


@strawberry.type
class JobItem:
    id: strawberry.ID
    position: int
    kind: str
    source_label: str
    status: str
    image_count: int
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    attempts: int
    warnings: list[str] = strawberry.field(default_factory=list,
                                           description="Engine warnings on a done item, e.g. document_repaired.")

    @classmethod
    def from_model(cls, item: Any) -> JobItem:
        return cls(id=strawberry.ID(str(item.id)), position=item.position, kind=item.kind,
                   source_label=item.source_label, status=item.status, image_count=item.image_count,
                   duration_ms=item.duration_ms, error_code=item.error_code, error_message=item.error_message,
                   attempts=item.attempts, warnings=list(getattr(item, "warnings", None) or []))


@strawberry.type
class Job:
    id: strawberry.ID
    type: str
    status: str
    progress: int
    partial: bool
    credits_used: int
    image_count: int
    total_items: int
    completed_items: int
    project_id: strawberry.ID | None
    metadata: JSON | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result_url: str | None

    @strawberry.field
    async def items(self, info: Info[GQLContext, None]) -> list[JobItem]:
        rows = await info.context.loaders.items_by_job.load(str(self.id))
        return [JobItem.from_model(i) for i in rows]

    @strawberry.field
    async def images(self, info: Info[GQLContext, None]) -> list[ImageResult]:
        rows = await info.context.loaders.images_by_job.load(str(self.id))
        return [ImageResult.from_model(i, info) for i in rows]

    @classmethod
    def from_model(cls, job: Any) -> Job:
        from imageextract.services.progress import progress_percent

        terminal = job.status in ("done", "failed", "cancelled")
        return cls(
            id=strawberry.ID(str(job.id)), type=job.type, status=job.status, progress=progress_percent(job),
            partial=job.partial, credits_used=job.credits_used if terminal else job.credits_reserved,
            image_count=job.image_count, total_items=job.total_items, completed_items=job.completed_items,
            project_id=strawberry.ID(job.project_id) if job.project_id else None, metadata=job.metadata,
            error_code=job.error_code, error_message=job.error_message, created_at=job.created_at,
            started_at=job.started_at, finished_at=job.finished_at,
            result_url=f"/api/v1/jobs/{job.id}/result" if job.status == "done" else None,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class JobConnection:
    nodes: list[Job]
    total_count: int
    page_info: PageInfo


@strawberry.type
class SubmitJobPayload:
    job_id: strawberry.ID
    replayed: bool


@strawberry.type
class JobProgressEvent:
    """One live event: `kind` is "job" (status, progress, result URL when done) or "item" (one item changed)."""

    kind: str
    job_id: strawberry.ID
    status: str | None = None
    progress: int | None = None
    completed_items: int | None = None
    total_items: int | None = None
    image_count: int | None = None
    partial: bool | None = None
    result_url: str | None = None
    error: str | None = None
    item: JobItem | None = None


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    subscribed_events: list[str]
    status: str
    disabled_reason: str | None
    created_at: datetime


@strawberry.type
class CreatedWebhook:
    webhook: WebhookEndpoint
    secret: str


@strawberry.type
class WebhookAttempt:
    attempt: int
    status_code: int | None
    duration_ms: int | None
    error: str | None
    created_at: datetime


@strawberry.type
class WebhookDelivery:
    id: strawberry.ID
    event_type: str
    status: str
    attempt: int
    url: str
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    payload: JSON
    attempts: list[WebhookAttempt] | None = None
