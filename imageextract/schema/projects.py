"""GraphQL types for projects and their API keys."""

from __future__ import annotations

from datetime import datetime

import strawberry

from imageextract.models import ApiKey as ApiKeyModel
from imageextract.models import Project as ProjectModel


@strawberry.type
class Project:
    id: strawberry.ID
    account_id: strawberry.ID
    name: str
    slug: str
    site_url: str | None
    default_webhook_url: str | None
    status: str
    is_default: bool
    created_at: datetime
    retention_days: int | None = strawberry.field(
        default=None, description="Finished jobs older than this many days are deleted; null keeps them forever.")
    default_webhook_secret: str | None = strawberry.field(
        default=None, description="Signs deliveries to defaultWebhookUrl: set only in the createProject and "
                                  "rotateProjectWebhookSecret answers, null on every read.")

    @classmethod
    def from_model(cls, p: ProjectModel, *, with_secret: bool = False) -> Project:
        return cls(
            id=strawberry.ID(p.id), account_id=strawberry.ID(p.account_id),  # type: ignore[attr-defined]
            name=p.name, slug=p.slug, site_url=p.site_url, default_webhook_url=p.default_webhook_url,
            status=p.status, is_default=p.is_default, created_at=p.created_at, retention_days=p.retention_days,
            default_webhook_secret=p.webhook_secret if with_secret else None,
        )


@strawberry.type
class ApiKey:
    id: strawberry.ID
    key_prefix: str
    label: str | None
    status: str
    project_id: strawberry.ID | None
    last_used: datetime | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_model(cls, k: ApiKeyModel) -> ApiKey:
        pid = k.project_id  # type: ignore[attr-defined]
        return cls(
            id=strawberry.ID(k.id), key_prefix=k.key_prefix, label=k.label, status=k.status,
            project_id=strawberry.ID(pid) if pid else None, last_used=k.last_used, created_at=k.created_at,
            revoked_at=k.revoked_at,
        )


@strawberry.type
class IssuedKey:
    """A new key: `key` is the full secret, shown this once."""

    key: str
    row: ApiKey
    previous_key_id: strawberry.ID | None = None
