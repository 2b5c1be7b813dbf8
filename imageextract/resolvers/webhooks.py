"""Resolvers for webhook endpoints and deliveries (the same services as the REST routes)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from imageextract.schema.context import GQLContext
from imageextract.schema.pagination import Connection
from imageextract.schema.webhooks import CreatedWebhook, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from imageextract.services import webhooks

GInfo = Info[GQLContext, None]


def _endpoint(e: Any) -> WebhookEndpoint:
    return WebhookEndpoint(id=strawberry.ID(e.id), url=e.url, subscribed_events=list(e.subscribed_events),
                           status=e.status, disabled_reason=e.disabled_reason, created_at=e.created_at)


def _delivery(d: Any, attempts: list[Any] | None = None) -> WebhookDelivery:
    return WebhookDelivery(
        id=strawberry.ID(d.id), event_type=d.event_type, status=d.status, attempt=d.attempt, url=d.url,
        last_status_code=d.last_status_code, last_error=d.last_error, created_at=d.created_at, payload=d.payload,
        attempts=None if attempts is None else [
            WebhookAttempt(attempt=a.attempt, status_code=a.status_code, duration_ms=a.duration_ms, error=a.error,
                           created_at=a.created_at) for a in attempts],
    )


async def webhook_endpoints(info: GInfo, project_id: strawberry.ID, first: int = 100,
                            after: str | None = None) -> Connection[WebhookEndpoint]:
    page = await webhooks.endpoints_page(info.context.ctx, str(project_id), first=first, after=after)
    return Connection.of(page, _endpoint)


async def webhook_deliveries(info: GInfo, project_id: strawberry.ID, first: int = 50,
                             after: str | None = None) -> Connection[WebhookDelivery]:
    page = await webhooks.deliveries_page(info.context.ctx, str(project_id), first=first, after=after)
    return Connection.of(page, _delivery)


async def webhook_delivery(info: GInfo, project_id: strawberry.ID, id: strawberry.ID) -> WebhookDelivery:
    d, attempts = await webhooks.get_delivery(info.context.ctx, str(project_id), str(id))
    return _delivery(d, attempts)


async def create_webhook(info: GInfo, project_id: strawberry.ID, url: str,
                         subscribed_events: list[str] | None = None) -> CreatedWebhook:
    e = await webhooks.create_endpoint(info.context.ctx, str(project_id), url=url, subscribed_events=subscribed_events)
    return CreatedWebhook(webhook=_endpoint(e), secret=e.secret)


async def update_webhook(info: GInfo, project_id: strawberry.ID, id: strawberry.ID,
                         url: str | None = strawberry.UNSET, subscribed_events: list[str] | None = strawberry.UNSET,
                         status: str | None = strawberry.UNSET) -> WebhookEndpoint:
    """Omitted arguments stay as they are; an explicit null means what it means over REST (for
    subscribedEvents: back to the default events)."""
    changes = {k: v for k, v in (("url", url), ("subscribed_events", subscribed_events), ("status", status))
               if v is not strawberry.UNSET}
    return _endpoint(await webhooks.update_endpoint(info.context.ctx, str(project_id), str(id), changes=changes))


async def delete_webhook(info: GInfo, project_id: strawberry.ID, id: strawberry.ID) -> bool:
    await webhooks.delete_endpoint(info.context.ctx, str(project_id), str(id))
    return True


async def test_webhook(info: GInfo, project_id: strawberry.ID, id: strawberry.ID) -> strawberry.ID:
    d = await webhooks.send_test(info.context.ctx, str(project_id), str(id))
    return strawberry.ID(d.id)


@strawberry.type
class Query:
    webhooks: Connection[WebhookEndpoint] = strawberry.field(resolver=webhook_endpoints)
    webhook_deliveries: Connection[WebhookDelivery] = strawberry.field(resolver=webhook_deliveries)
    webhook_delivery: WebhookDelivery = strawberry.field(resolver=webhook_delivery)


@strawberry.type
class Mutation:
    create_webhook: CreatedWebhook = strawberry.mutation(resolver=create_webhook)
    update_webhook: WebhookEndpoint = strawberry.mutation(resolver=update_webhook)
    delete_webhook: bool = strawberry.mutation(resolver=delete_webhook)
    test_webhook: strawberry.ID = strawberry.mutation(resolver=test_webhook)
