"""GraphQL types for jobs, their items and images, and live progress. Each maps a service view
(services/job_views.py) field for field; no rule is decided here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from imageextract.schema.context import GQLContext
from imageextract.schema.pagination import Connection, asks_total
from imageextract.schema.webhooks import WebhookDelivery
from imageextract.services.job_callbacks import job_deliveries
from imageextract.services.job_views import FailedImageView, ImageView, ItemView, JobView
from imageextract.services.jobs import items_page
from imageextract.services.result_exports import export_path


def _view(row: Any) -> Any:
    """A service view served as it is (schema default resolver: imageextract.graphql_fanout.view_attr)."""
    return row


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
    def from_view(cls, view: ImageView) -> ImageResult:
        return cls(**view)  # type: ignore[arg-type]


@strawberry.type
class FailedImage:
    """An image a source referenced whose bytes could not be fetched: no download URL."""

    source_url: str | None
    filename: str
    group_id: strawberry.ID
    error: str | None

    @classmethod
    def from_view(cls, view: FailedImageView) -> FailedImage:
        return cls(**view)  # type: ignore[arg-type]


@strawberry.type
class JobItem:
    id: strawberry.ID
    position: int
    kind: str
    source_label: str
    status: str
    image_count: int
    failed_image_count: int
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    attempts: int
    updated_at: datetime | None
    warnings: list[str] = strawberry.field(default_factory=list,
                                           description="Engine warnings on a done item, e.g. document_repaired.")

    @classmethod
    def from_view(cls, item: ItemView) -> JobItem:
        return cls(id=strawberry.ID(item.id), position=item.position, kind=item.kind,
                   source_label=item.source_label, status=item.status, image_count=item.image_count,
                   failed_image_count=item.failed_image_count, duration_ms=item.duration_ms,
                   error_code=item.error_code, error_message=item.error_message, attempts=item.attempts,
                   updated_at=item.updated_at, warnings=list(item.warnings))

    @classmethod
    def from_event(cls, it: dict[str, Any]) -> JobItem:
        return cls(id=strawberry.ID(it["id"]), position=it["position"], kind=it["kind"],
                   source_label=it["source_label"], status=it["status"], image_count=it["image_count"],
                   failed_image_count=it.get("failed_image_count", 0), duration_ms=it["duration_ms"],
                   error_code=it["error_code"], error_message=it["error_message"], attempts=it.get("attempts", 0),
                   updated_at=None, warnings=list(it.get("warnings") or []))


@strawberry.type
class Job:
    id: strawberry.ID
    type: str
    status: str
    progress: int
    partial: bool
    credits_used: int
    image_count: int
    failed_image_count: int
    total_items: int
    completed_items: int
    project_id: strawberry.ID | None
    metadata: JSON | None
    error_code: str | None
    error_message: str | None
    retry_of: strawberry.ID | None
    created_at: datetime
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    result_url: str | None
    view: strawberry.Private[JobView]  # what the fields were read from: the result rule reads it

    @strawberry.field(description="The job's items (one per source) in position order.")
    async def items(self, info: Info[GQLContext, None], first: int = 100,
                    after: str | None = None) -> Connection[JobItem]:

        loaded = await info.context.loaders.items_by_job.load(str(self.id)) if after is None else None
        page = await items_page(info.context.ctx, str(self.id), first=first, after=after, loaded=loaded)
        return Connection.of(page, JobItem.from_view)

    @strawberry.field(description="Stored images, as GET /api/v1/jobs/:id/result lists them (the same rule: "
                                  "an error with code not_ready while running, job_failed or job_cancelled).")
    async def images(self, info: Info[GQLContext, None], first: int = 100,
                     after: str | None = None) -> Connection[ImageResult]:

        page = await info.context.loaders.image_page(self.view, failed=False, first=first, after=after,
                                                     count=asks_total(info))
        return Connection.of(page, _view)  # the views as they are: the default resolver reads dicts

    @strawberry.field(description="Images found whose bytes could not be fetched (same rule as images).")
    async def failed_images(self, info: Info[GQLContext, None], first: int = 100,
                            after: str | None = None) -> Connection[FailedImage]:

        page = await info.context.loaders.image_page(self.view, failed=True, first=first, after=after,
                                                     count=asks_total(info))
        return Connection.of(page, _view)

    @strawberry.field(description="Webhook deliveries about this job (its own callback and its project's "
                                  "webhooks), newest first.")
    async def webhook_deliveries(self, info: Info[GQLContext, None], first: int = 20,
                                 after: str | None = None) -> Connection[WebhookDelivery]:

        page = await job_deliveries(info.context.ctx, str(self.id), first=first, after=after)
        return Connection.of(page, WebhookDelivery.from_model)

    @strawberry.field(description="Where to download the result as a file (csv, xlsx, json or xml): "
                                  "GET /api/v1/jobs/:id/export/{format} on this API's origin.")
    def export_url(self, info: Info[GQLContext, None], format: str) -> str:
        return f"{info.context.ctx.base_url or ''}{export_path(self.id, format)}"

    @classmethod
    def from_view(cls, job: JobView) -> Job:
        return cls(
            id=strawberry.ID(job.id), type=job.type, status=job.status, progress=job.progress, partial=job.partial,
            credits_used=job.credits_used, image_count=job.image_count, failed_image_count=job.failed_image_count,
            total_items=job.total_items, completed_items=job.completed_items,
            project_id=strawberry.ID(job.project_id) if job.project_id else None, metadata=job.metadata,
            error_code=job.error_code, error_message=job.error_message,
            retry_of=strawberry.ID(job.retry_of) if job.retry_of else None, created_at=job.created_at,
            updated_at=job.updated_at, started_at=job.started_at, finished_at=job.finished_at,
            result_url=job.result_url, view=job,
        )


@strawberry.type
class SubmitJobPayload:
    job_id: strawberry.ID
    replayed: bool
    webhook_secret: str | None = strawberry.field(
        default=None, description="The job's own callback secret (whsec_...): in this response only.")

    @classmethod
    def of(cls, submitted: Any) -> SubmitJobPayload:
        return cls(job_id=strawberry.ID(str(submitted.job.id)), replayed=not submitted.created,
                   webhook_secret=submitted.webhook_secret if submitted.created else None)


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
    failed_image_count: int | None = None
    credits_used: int | None = None
    partial: bool | None = None
    result_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    item: JobItem | None = None

    @classmethod
    def from_event(cls, message: dict[str, Any]) -> JobProgressEvent:
        if message.get("event") == "item":
            return cls(kind="item", job_id=strawberry.ID(message["job_id"]),
                       item=JobItem.from_event(message["item"]))
        return cls(
            kind="job", job_id=strawberry.ID(message["job_id"]), status=message.get("status"),
            progress=message.get("progress"), completed_items=message.get("completed_items"),
            total_items=message.get("total_items"), image_count=message.get("image_count"),
            failed_image_count=message.get("failed_image_count"), credits_used=message.get("credits_used"),
            partial=message.get("partial"), result_url=message.get("result_url"), error=message.get("error"),
            error_code=message.get("error_code"),
        )
