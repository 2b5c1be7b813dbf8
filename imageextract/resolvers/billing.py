"""Resolvers for billing: the plan catalog, checkout, payment events (the account's `billing` field lives on
the Account type and calls the same service)."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from imageextract.schema.billing import CheckoutPayload, PaymentEvent
from imageextract.schema.context import GQLContext
from imageextract.schema.pagination import Connection
from imageextract.schema.plans import Plan
from imageextract.services import billing

GInfo = Info[GQLContext, None]


def plans() -> list[Plan]:
    return [Plan.from_offer(o) for o in billing.plan_catalog()]


async def payment_events(info: GInfo, first: int = 20, after: str | None = None) -> Connection[PaymentEvent]:
    page = await billing.payment_events(info.context.ctx, first=first, after=after)
    return Connection.of(page, PaymentEvent.from_model)


async def create_checkout(info: GInfo, plan: str) -> CheckoutPayload:
    session = await billing.start_checkout(info.context.ctx, plan=plan)
    return CheckoutPayload(url=session.url, session_id=session.session_id)


@strawberry.type
class Query:
    plans: list[Plan] = strawberry.field(resolver=plans)
    payment_events: Connection[PaymentEvent] = strawberry.field(resolver=payment_events)


@strawberry.type
class Mutation:
    create_checkout: CheckoutPayload = strawberry.mutation(resolver=create_checkout)
