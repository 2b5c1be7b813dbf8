"""GraphQL types for billing: the account's subscription state, the plan catalog, checkout, payment events."""

from __future__ import annotations

from datetime import datetime

import strawberry

from imageextract.models import PaymentEvent as PaymentEventModel
from imageextract.services.billing import BillingState


@strawberry.type
class Billing:
    plan: str
    status: str  # active | on_hold | failed | cancelled | expired, or none (never subscribed)
    current_period_end: datetime | None
    cancel_at_period_end: bool
    subscription_id: str | None

    @classmethod
    def from_state(cls, s: BillingState) -> Billing:
        return cls(plan=s.plan, status=s.status, current_period_end=s.current_period_end,
                   cancel_at_period_end=s.cancel_at_period_end, subscription_id=s.subscription_id)


@strawberry.type
class CheckoutPayload:
    url: str
    session_id: str


@strawberry.type
class PaymentEvent:
    id: strawberry.ID
    event_type: str
    outcome: str
    occurred_at: datetime | None
    received_at: datetime
    subscription_id: str | None
    payment_id: str | None
    amount: int | None
    currency: str | None

    @classmethod
    def from_model(cls, e: PaymentEventModel) -> PaymentEvent:
        return cls(id=strawberry.ID(e.id), event_type=e.event_type, outcome=e.outcome, occurred_at=e.occurred_at,
                   received_at=e.created_at, subscription_id=e.subscription_id, payment_id=e.payment_id,
                   amount=e.amount, currency=e.currency)
