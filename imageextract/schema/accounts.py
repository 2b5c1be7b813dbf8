"""GraphQL types for accounts: the viewer, the account, limits, usage, the credit ledger, sessions."""

from __future__ import annotations

from datetime import datetime

import strawberry

from imageextract.models import LedgerEntry as LedgerEntryModel
from imageextract.schema.billing import Billing
from imageextract.services import billing as billing_service


@strawberry.type
class Account:
    id: strawberry.ID
    name: str
    slug: str
    plan: str
    status: str
    membership_role: str
    credits: int

    @strawberry.field
    async def billing(self) -> Billing:
        """The account's plan and subscription state (services.billing)."""
        return Billing.from_state(await billing_service.billing_state(account_id=str(self.id)))


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
