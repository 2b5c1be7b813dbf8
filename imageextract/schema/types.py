"""Strawberry types for the platform domain: accounts, projects, keys, ledger, limits, usage."""

from __future__ import annotations

from datetime import datetime

import strawberry

from imageextract.models import ApiKey as ApiKeyModel
from imageextract.models import LedgerEntry as LedgerEntryModel
from imageextract.models import Project as ProjectModel
from imageextract.services.plans import Plan


@strawberry.type
class Account:
    id: strawberry.ID
    name: str
    slug: str
    plan: str
    status: str
    membership_role: str
    credits: int


@strawberry.type
class Limits:
    plan: str
    credits_included: int
    daily_credit_cap: int
    api_access: bool
    ads_enabled: bool
    bulk_max_urls: int
    document_max_files: int
    document_max_mb: int
    url_worker_concurrency: int

    @classmethod
    def from_plan(cls, plan: Plan) -> Limits:
        return cls(**plan.limits())  # type: ignore[arg-type]


@strawberry.type
class Usage:
    account_id: strawberry.ID
    jobs_total: int
    credits_debited: int
    images_extracted: int


@strawberry.type
class LedgerEntry:
    id: strawberry.ID
    entry_type: str
    amount: int
    balance_after: int
    job_id: strawberry.ID | None
    note: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, e: LedgerEntryModel) -> LedgerEntry:
        return cls(
            id=strawberry.ID(str(e.id)), entry_type=e.entry_type, amount=e.amount, balance_after=e.balance_after,
            job_id=strawberry.ID(str(e.job_id)) if e.job_id else None, note=e.note, created_at=e.created_at,
        )


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

    @classmethod
    def from_model(cls, p: ProjectModel) -> Project:
        return cls(
            id=strawberry.ID(p.id), account_id=strawberry.ID(p.account_id),  # type: ignore[attr-defined]
            name=p.name, slug=p.slug, site_url=p.site_url, default_webhook_url=p.default_webhook_url,
            status=p.status, is_default=p.is_default, created_at=p.created_at,
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


@strawberry.type
class Viewer:
    user_id: strawberry.ID | None
    email: str | None
    auth_method: str
    account: Account


@strawberry.type
class LoginPayload:
    user_id: strawberry.ID
    email: str
    account_id: strawberry.ID
    expires_at: datetime
