"""Webhook endpoints per project: list, create (secret shown once), update, delete, test, deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from imageextract.context import Context
from imageextract.errors import NotFound, ValidationError
from imageextract.models import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from imageextract.services.pagination import Page, keyset_page
from imageextract.services.permissions import require_role
from imageextract.services.projects import get_project
from imageextract.services.urls import check_public_url, validate_http_url
from imageextract.services.webhook_events import create_delivery
from imageextract.services.webhook_signing import new_secret

SUBSCRIBABLE = tuple(e for e in EVENT_TYPES if e != "webhook.test")
DEFAULT_EVENTS = list(SUBSCRIBABLE)


def _clean_events(value: Any) -> list[str]:
    if value is None:
        return list(DEFAULT_EVENTS)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValidationError("subscribed_events must be a non-empty list of event names",
                              details={"field": "subscribed_events", "allowed": list(SUBSCRIBABLE)})
    unknown = sorted(set(value) - set(SUBSCRIBABLE))
    if unknown:
        raise ValidationError(f"Unknown events: {', '.join(unknown)}",
                              details={"field": "subscribed_events", "allowed": list(SUBSCRIBABLE)})
    return sorted(set(value), key=list(SUBSCRIBABLE).index)


async def _clean_url(ctx: Context, value: Any) -> str:
    url = validate_http_url(value, field="url")
    await check_public_url(ctx, url, field="url")
    return url


async def endpoints_page(ctx: Context, project_id: str, *, first: int, after: str | None) -> Page[WebhookEndpoint]:
    project = await get_project(ctx, project_id)
    return await keyset_page(WebhookEndpoint.filter(project_id=project.id), first=first, after=after,
                             sort="created_at", descending=False)


async def deliveries_page(ctx: Context, project_id: str, *, first: int, after: str | None) -> Page[WebhookDelivery]:
    """The project's deliveries, newest first (the list `list_deliveries` cuts at `limit`)."""
    project = await get_project(ctx, project_id)
    return await keyset_page(WebhookDelivery.filter(project_id=project.id), first=first, after=after,
                             sort="created_at", descending=True)


async def list_endpoints(ctx: Context, project_id: str) -> list[WebhookEndpoint]:
    project = await get_project(ctx, project_id)
    return await WebhookEndpoint.filter(project_id=project.id).order_by("created_at", "id")


async def create_endpoint(ctx: Context, project_id: str, *, url: Any, subscribed_events: Any = None) -> WebhookEndpoint:
    project = await get_project(ctx, project_id)
    principal = require_role(ctx, "admin")
    clean_url = await _clean_url(ctx, url)
    events = _clean_events(subscribed_events)
    return await WebhookEndpoint.create(account_id=principal.account_id, project=project, url=clean_url,
                                        secret=new_secret(), subscribed_events=events)


async def get_endpoint(ctx: Context, project_id: str, webhook_id: str) -> WebhookEndpoint:
    project = await get_project(ctx, project_id)
    endpoint = await WebhookEndpoint.filter(id=webhook_id, project_id=project.id).first()
    if endpoint is None:
        raise NotFound("Webhook not found", details={"webhook_id": webhook_id})
    return endpoint


async def update_endpoint(ctx: Context, project_id: str, webhook_id: str, *, changes: dict[str, Any]) -> WebhookEndpoint:
    endpoint = await get_endpoint(ctx, project_id, webhook_id)
    require_role(ctx, "admin")
    allowed = {"url", "subscribed_events", "status"}
    unknown = set(changes) - allowed
    if unknown or not changes:
        raise ValidationError("Send url, subscribed_events and/or status", details={"allowed": sorted(allowed)})
    if "url" in changes:
        endpoint.url = await _clean_url(ctx, changes["url"])
    if "subscribed_events" in changes:
        endpoint.subscribed_events = _clean_events(changes["subscribed_events"])
    if "status" in changes:
        status = changes["status"]
        if status not in ("active", "disabled"):
            raise ValidationError("status must be 'active' or 'disabled'", details={"field": "status"})
        if status == "active" and endpoint.status != "active":
            endpoint.failing_since = None
            endpoint.disabled_reason = None
        elif status == "disabled" and endpoint.status != "disabled":
            endpoint.disabled_reason = "Disabled by a user"
        endpoint.status = status
    await endpoint.save()
    return endpoint


async def delete_endpoint(ctx: Context, project_id: str, webhook_id: str) -> None:
    endpoint = await get_endpoint(ctx, project_id, webhook_id)
    require_role(ctx, "admin")
    await endpoint.delete()


async def send_test(ctx: Context, project_id: str, webhook_id: str) -> WebhookDelivery:

    endpoint = await get_endpoint(ctx, project_id, webhook_id)
    require_role(ctx, "admin")
    project = await get_project(ctx, project_id)
    payload = {
        "type": "webhook.test",
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"webhook_id": endpoint.id, "project_id": project.id, "message": "This is a test event."},
    }
    delivery = await create_delivery(ctx.services, project=project, endpoint=endpoint, url=endpoint.url,
                                     event_type="webhook.test", event_key=f"test:{uuid.uuid4()}", payload=payload)
    assert delivery is not None  # a fresh event key never collides
    return delivery


async def list_deliveries(ctx: Context, project_id: str, *, limit: int = 50) -> list[WebhookDelivery]:
    project = await get_project(ctx, project_id)
    if not 1 <= limit <= 500:
        raise ValidationError("limit must be between 1 and 500", details={"field": "limit"})
    return await WebhookDelivery.filter(project_id=project.id).order_by("-created_at", "-id").limit(limit)


async def get_delivery(ctx: Context, project_id: str, delivery_id: str) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    project = await get_project(ctx, project_id)
    delivery = await WebhookDelivery.filter(id=delivery_id, project_id=project.id).first()
    if delivery is None:
        raise NotFound("Delivery not found", details={"delivery_id": delivery_id})
    attempts = await WebhookAttempt.filter(delivery_id=delivery.id).order_by("attempt")
    return delivery, attempts
