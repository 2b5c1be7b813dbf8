"""GraphQL types for batches (shared/spec/003). Each maps a service view (services/batches.py) field for
field; no rule is decided here."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from imageextract.schema.context import GQLContext
from imageextract.schema.pagination import Connection
from imageextract.services import batches
from imageextract.services.batches import BatchItemView, BatchView
from imageextract.services.pagination import Page


@strawberry.type
class BatchCounts:
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


@strawberry.type
class BatchItemError:
    code: str
    message: str | None


@strawberry.type
class BatchItem:
    id: strawberry.ID
    position: int
    source: str
    status: str
    updated_at: datetime
    error: BatchItemError | None
    image_count: int
    result_url: str | None = strawberry.field(description="Path (on this API) that redirects to a signed, "
                                                          "expiring URL of the item's result JSON")

    @classmethod
    def from_view(cls, item: BatchItemView) -> BatchItem:
        return cls(id=strawberry.ID(item.id), position=item.position, source=item.source, status=item.status,
                   updated_at=item.updated_at,
                   error=BatchItemError(code=item.error_code, message=item.error_message) if item.error_code else None,
                   image_count=item.image_count, result_url=item.result_url)


@strawberry.type
class Batch:
    id: strawberry.ID
    status: str
    total_items: int
    counts: BatchCounts
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None

    @strawberry.field(description="Items in (updatedAt, id) order after the cursor `after`: walking on from the "
                                  "last endCursor shows every item that changed since, once.")
    async def items(self, info: Info[GQLContext, None], first: int = 100, after: str | None = None,
                    status: str | None = None) -> Connection[BatchItem]:

        page = await batches.batch_page(info.context.ctx, str(self.id), limit=first, cursor=after, status=status,
                                        fields=("first", "after"))
        return Connection.of(Page(rows=page.items, total=page.total, has_next=page.has_more,
                                  has_previous=after is not None, cursors=page.cursors), BatchItem.from_view)

    @classmethod
    def from_view(cls, view: BatchView) -> Batch:
        return cls(id=strawberry.ID(view.id), status=view.status, total_items=view.total_items,
                   counts=BatchCounts(**view.counts), created_at=view.created_at, finished_at=view.finished_at,
                   expires_at=view.expires_at)


@strawberry.type
class CreateBatchPayload:
    batch: Batch
    replayed: bool


@strawberry.type
class BatchProgressEvent:
    """Counts by item status (sent at most a few times a second, always including the final state)."""

    batch_id: strawberry.ID
    status: str
    total_items: int
    counts: BatchCounts

    @classmethod
    def from_view(cls, view: BatchView) -> BatchProgressEvent:
        return cls(batch_id=strawberry.ID(view.id), status=view.status, total_items=view.total_items,
                   counts=BatchCounts(**view.counts))
