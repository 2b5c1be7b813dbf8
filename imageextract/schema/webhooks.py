"""GraphQL types for webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON


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

    @classmethod
    def from_model(cls, d: Any) -> WebhookDelivery:
        return cls(id=strawberry.ID(d.id), event_type=d.event_type, status=d.status, attempt=d.attempt, url=d.url,
                   last_status_code=d.last_status_code, last_error=d.last_error, created_at=d.created_at,
                   payload=d.payload)
